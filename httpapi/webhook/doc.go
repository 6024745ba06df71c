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
// The database needs the tables of audit.Migrate and [Migrate].
package webhook
