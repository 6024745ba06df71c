package httpapi

import (
	"errors"
	"net/http"
)

// Principal is who is calling: the account whose audit log it may read and
// what kind of user it is. Only bots may read the endpoint.
type Principal struct {
	// AccountID is the tenant the caller belongs to. Every query the
	// handler runs is restricted to it.
	AccountID int64
	// ID identifies the caller in logs, such as a bot user's UUID or a
	// token's id. It must not be a secret.
	ID string
	// Type is the caller's kind. Only [PrincipalBot] may read the endpoint;
	// any other type is answered with 403.
	Type string
}

// PrincipalBot is the [Principal.Type] of bot users, the only callers
// allowed to read the audit log.
const PrincipalBot = "BotUser"

// PrincipalUser is the [Principal.Type] of people. A token issued for one
// authenticates, but the endpoint answers it with 403.
const PrincipalUser = "User"

// IsBot reports whether p is a bot user.
func (p Principal) IsBot() bool { return p.Type == PrincipalBot }

// Authenticator identifies the caller of a request. Services with their own
// authentication implement it and set [Options.Authenticator].
type Authenticator interface {
	// Authenticate returns the request's caller. It returns an error
	// wrapping [ErrUnauthenticated] when the request carries no valid
	// credentials (answered with 401), and any other error when it cannot
	// tell (answered with 500 and logged).
	Authenticate(r *http.Request) (Principal, error)
}

// AuthenticatorFunc adapts a function to [Authenticator].
type AuthenticatorFunc func(r *http.Request) (Principal, error)

// Authenticate calls f(r).
func (f AuthenticatorFunc) Authenticate(r *http.Request) (Principal, error) { return f(r) }

// ErrUnauthenticated is wrapped by an [Authenticator]'s error when a request
// has missing, unknown, expired or revoked credentials.
var ErrUnauthenticated = errors.New("httpapi: missing or invalid credentials")
