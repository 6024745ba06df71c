package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gormaudit/gormaudit/audit"
)

// The headers of a webhook delivery.
const (
	// HeaderDelivery is the idempotency key: the audit row's id, the same
	// on every attempt to deliver that row. A receiver that has processed
	// a delivery id for a subscriber can ignore it the next time.
	HeaderDelivery = "X-Audit-Delivery"
	// HeaderSubscriber is the subscriber's id.
	HeaderSubscriber = "X-Audit-Subscriber"
	// HeaderTimestamp is the attempt's time in Unix seconds, covered by
	// the signature.
	HeaderTimestamp = "X-Audit-Timestamp"
	// HeaderSignature is "v1=" followed by the lowercase hex
	// HMAC-SHA256, keyed with the subscriber's secret, of the timestamp
	// header's value, ".", and the raw body. Receivers may accept several
	// comma-separated values (during a secret rotation).
	HeaderSignature = "X-Audit-Signature"
)

// Event is the JSON body of a webhook delivery.
type Event struct {
	// SubscriberID is the subscriber delivered to.
	SubscriberID int64 `json:"subscriber_id"`
	// Audit is the new audit row, in the endpoint's row format.
	Audit audit.Audit `json:"audit"`
}

// ErrInvalidSignature is returned, wrapped, by [VerifySignature] for a
// delivery whose signature or timestamp does not check out.
var ErrInvalidSignature = errors.New("webhook: invalid webhook signature")

// Sign returns the value of [HeaderSignature] for body sent at timestamp
// (Unix seconds) with secret.
func Sign(secret string, timestamp int64, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(timestamp, 10), body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a delivery's headers against its raw body and the
// subscriber's secret. Call it before parsing the body. With a positive
// tolerance it also rejects a timestamp further than tolerance from now, so
// that a recorded delivery cannot be replayed later (5 minutes is usual).
// It returns nil or an error wrapping [ErrInvalidSignature].
func VerifySignature(secret string, h http.Header, body []byte, tolerance time.Duration) error {
	ts := h.Get(HeaderTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not Unix seconds", ErrInvalidSignature, HeaderTimestamp)
	}
	if tolerance > 0 {
		if d := time.Since(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return fmt.Errorf("%w: timestamp is %s away from now", ErrInvalidSignature, d.Round(time.Second))
		}
	}
	want := mac(secret, ts, body)
	for _, v := range h.Values(HeaderSignature) {
		for part := range strings.SplitSeq(v, ",") {
			hexSig, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
			if !ok {
				continue
			}
			got, err := hex.DecodeString(hexSig)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrInvalidSignature)
}
