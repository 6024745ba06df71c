package webhook

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/runbooks"
)

// TestWebhookAddressesRefused requires AddSubscriber to refuse URLs that
// reach the service's own network unless explicitly allowed.
func TestWebhookAddressesRefused(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	for _, u := range []string{
		"http://127.0.0.1/hook", "http://localhost:8080/hook", "http://[::1]/hook",
		"http://10.1.2.3/hook", "http://172.16.0.1/hook", "http://192.168.1.1/hook", "http://[fd00:ec2::254]/hook",
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/hook", "http://100.100.100.200/hook",
		"http://224.0.0.1/hook", "http://[ff02::1]/hook", "http://0.0.0.0/hook", "http://[::]/hook",
		"http://[::ffff:127.0.0.1]/hook", "http://0.1.2.3/hook",
	} {
		_, err := AddSubscriber(e.ctx, e.db, SubscriberSpec{AccountID: 1, URL: u})
		require.ErrorIs(t, err, ErrForbiddenAddress, u)
		var ae *AddressError
		require.ErrorAs(t, err, &ae, u)
		require.True(t, forbidden(ae.Addr), u)
		require.True(t, strings.HasPrefix(err.Error(), "webhook: "), err.Error())

		_, err = AddSubscriber(e.ctx, e.db, SubscriberSpec{AccountID: 1, URL: u, AllowPrivateNetworks: true})
		require.NoError(t, err, "%s, allowed", u)
	}
	for _, a := range []string{"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "100.128.0.1", "1.1.1.1"} {
		require.False(t, forbidden(netip.MustParseAddr(a)), a)
	}
	_, err := AddSubscriber(e.ctx, e.db, SubscriberSpec{AccountID: 1, URL: "http://93.184.215.14/hook"})
	require.NoError(t, err, "a public address")
}

// syncBuffer is a log destination that signals each write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.written <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestWebhookRebindingRefusedAtDelivery stands for a host that resolved to
// a public address when it was added and resolves to loopback now: the
// default notifier checks the address it connects to, refuses it, and
// delivers nothing.
func TestWebhookRebindingRefusedAtDelivery(t *testing.T) {
	t.Parallel()
	e := nsetup(t)
	rc := newReceiver(t)
	sub := rc.subscribe(t, e, SubscriberSpec{AccountID: 1}) // accepted, as if public then
	require.NoError(t, e.w().Create(&runbooks.Runbook{AccountID: 1, Name: "r"}).Error)

	logs := &syncBuffer{written: make(chan struct{}, 1)}
	opts := testNotifierOptions()
	opts.AllowPrivateNetworks = false // the default
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	stop := start(t, newNotifier(t, e, opts))
	deadline := time.NewTimer(time.Minute)
	defer deadline.Stop()
	for !strings.Contains(logs.String(), "delivery failed") {
		select {
		case <-logs.written:
		case <-deadline.C:
			t.Fatalf("no failed delivery logged within a minute: %s", logs.String())
		}
	}
	stop()
	require.Contains(t, logs.String(), "webhook: address 127.0.0.1 is a loopback, private")
	arrived, _ := rc.got(sub.ID)
	require.Empty(t, arrived, "nothing reached the loopback receiver")
	subs, err := ListSubscribers(e.ctx, e.db, 1)
	require.NoError(t, err)
	require.Zero(t, subs[0].CursorID, "the row is still to deliver")
}
