package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenAddress is wrapped by the errors of [AddSubscriber] and of
// deliveries when a webhook URL's host is, or resolves to, an address a
// webhook must not reach by default: loopback, private, link-local (such as
// the cloud metadata address 169.254.169.254), multicast, unspecified or
// shared (100.64.0.0/10). Set [SubscriberSpec].AllowPrivateNetworks and
// [NotifierOptions].AllowPrivateNetworks to allow them.
var ErrForbiddenAddress = errors.New("webhook: address is not public")

// AddressError reports a webhook host that is, or resolves to, a forbidden
// address. It wraps [ErrForbiddenAddress].
type AddressError struct {
	// Host is the URL's host, or the address dialled at delivery.
	Host string
	// Addr is the forbidden address.
	Addr netip.Addr
}

func (e *AddressError) Error() string {
	const what = "a loopback, private, link-local, multicast, shared or unspecified address"
	if e.Host == e.Addr.String() {
		return fmt.Sprintf("webhook: address %s is %s", e.Addr, what)
	}
	return fmt.Sprintf("webhook: host %s is %s, %s", e.Host, e.Addr, what)
}

// Unwrap returns [ErrForbiddenAddress].
func (e *AddressError) Unwrap() error { return ErrForbiddenAddress }

// sharedSpace is 100.64.0.0/10 (RFC 6598), where carriers and some clouds
// (100.100.100.200) put internal services.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// forbidden reports whether a webhook must not reach a.
func forbidden(a netip.Addr) bool {
	a = a.Unmap()
	return !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || sharedSpace.Contains(a) ||
		(a.Is4() && a.As4()[0] == 0) // 0.0.0.0/8: "this network"
}

// checkHost resolves host and returns an *AddressError if any of its
// addresses is forbidden.
func checkHost(ctx context.Context, host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if forbidden(a) {
			return &AddressError{Host: host, Addr: a}
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("webhook: resolve host %s: %w", host, err)
	}
	for _, a := range addrs {
		if forbidden(a) {
			return &AddressError{Host: host, Addr: a}
		}
	}
	return nil
}

// guardedClient is the default delivery client when private networks are
// not allowed: it checks the address of every connection it opens, after
// DNS resolution, so that a host that resolved to a public address when it
// was added and resolves to a private one now (DNS rebinding) is refused
// too. It uses no proxy, whose address would be the one checked, and does
// not follow redirects.
func guardedClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: refuseForbidden}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = d.DialContext
	return &http.Client{
		Timeout: timeout, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refuseForbidden is a net.Dialer Control: it runs before each connect,
// with the resolved address.
func refuseForbidden(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: address %q: %w", address, err)
	}
	if forbidden(ap.Addr()) {
		return &AddressError{Host: ap.Addr().String(), Addr: ap.Addr()}
	}
	return nil
}
