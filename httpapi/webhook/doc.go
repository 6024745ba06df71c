// Package webhook pushes new audit rows to customers' URLs: it stores
// subscribers, delivers each matching row as a signed POST, and lets
// receivers check the signature.
//
// A [Notifier] delivers every new audit row matching a subscriber's filters
// ([AddSubscriber]) to its webhook as a signed POST, in the order of the
// endpoint's polling stream (see package httpapi, "Polling"), retrying with
// exponential backoff and storing its cursor only after a 2xx: at least
// once, in order per subscriber, nothing lost across restarts. Receivers
// check deliveries with [VerifySignature]. Webhook URLs that are, or
// resolve to, loopback, private, link-local (cloud metadata), multicast or
// unspecified addresses are refused when added and again at every
// connection ([ErrForbiddenAddress]), unless explicitly allowed.
//
// # Scale
//
// One read of the audits table per account and poll interval serves all
// of the account's subscribers; deliveries to different subscribers run
// concurrently (NotifierOptions.Concurrency), each subscriber's in order.
//
// # Dead letter
//
// A subscriber whose deliveries keep failing, NotifierOptions.MaxAttempts
// times in a row (default 100) or for MaxFailingFor (default 24 hours), is
// dead-lettered: [Subscriber.DeadAt] is set, [ListSubscribers] shows it
// with its LastError, and the notifier skips it. Its cursor is kept, so
// [ResumeSubscriber] makes it receive every row it missed, in order,
// starting with the one that failed.
//
// The database needs the tables of audit.Migrate and [Migrate].
package webhook
