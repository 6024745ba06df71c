package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// TokensTableName is the table bot tokens are stored in.
const TokensTableName = "audit_api_tokens"

// TokenPrefix starts every token this package issues, so that a leaked
// token is recognisable (for example by secret scanners).
const TokenPrefix = "gat_"

// tokenBytes is the number of random bytes in a token: 256 bits.
const tokenBytes = 32

// Token is a stored API token. Only a SHA-256 hash of the secret is kept:
// the plaintext is returned once, by [IssueToken].
type Token struct {
	// ID identifies the token for listing and revoking.
	ID int64 `gorm:"primaryKey;autoIncrement" json:"id"`
	// AccountID is the account the token reads.
	AccountID int64 `gorm:"not null;index" json:"account_id"`
	// Name is a label for people, such as "alerting bot".
	Name string `gorm:"size:255;not null;default:''" json:"name"`
	// PrincipalID and PrincipalType describe who the token acts for; see
	// [Principal].
	PrincipalID   string `gorm:"size:255;not null;default:''" json:"principal_id"`
	PrincipalType string `gorm:"size:64;not null" json:"principal_type"`
	// Hint is the start of the token, enough for a person to tell tokens
	// apart and far too little to use one.
	Hint string `gorm:"size:16;not null" json:"hint"`
	// Hash is the SHA-256 of the whole token.
	Hash      []byte     `gorm:"not null;uniqueIndex" json:"-"`
	CreatedAt time.Time  `gorm:"not null" json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// TableName implements gorm's Tabler.
func (Token) TableName() string { return TokensTableName }

// TokenSpec describes a token to issue.
type TokenSpec struct {
	// AccountID is the account the token may read. Required.
	AccountID int64
	// Name labels the token for people.
	Name string
	// PrincipalID identifies the bot (or user) the token acts for.
	PrincipalID string
	// PrincipalType is the kind of caller. Defaults to [PrincipalBot].
	PrincipalType string
	// Plaintext, when set, is the token to store instead of a new random
	// one, for a token chosen elsewhere (a demo, a move from another
	// store). It must be [TokenPrefix] followed by at least 22 characters
	// of the URL-safe base64 alphabet (128 bits or more). Defaults to a
	// new random token.
	Plaintext string
}

// ErrTokenExists is returned by [IssueToken] when the chosen
// [TokenSpec].Plaintext is already stored.
var ErrTokenExists = errors.New("httpapi: token already issued")

// ErrTokenNotFound is returned by [RevokeToken] when the account has no
// token with that id.
var ErrTokenNotFound = errors.New("httpapi: token not found")

// Migrate creates or updates the token table. Run it with audit.Migrate.
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&Token{}); err != nil {
		return fmt.Errorf("httpapi: migrate: %w", err)
	}
	return nil
}

// IssueToken creates a token and returns its plaintext, which is not
// stored and cannot be recovered: hand it to the bot now.
func IssueToken(ctx context.Context, db *gorm.DB, spec TokenSpec) (plaintext string, tok Token, err error) {
	if spec.AccountID == 0 {
		return "", Token{}, errors.New("httpapi: issue token: AccountID is required")
	}
	if spec.PrincipalType == "" {
		spec.PrincipalType = PrincipalBot
	}
	if spec.Plaintext != "" {
		if !chosenTokenOK(spec.Plaintext) {
			return "", Token{}, fmt.Errorf("httpapi: issue token: Plaintext must be %q and 22 or more URL-safe base64 characters", TokenPrefix)
		}
		plaintext = spec.Plaintext
	} else {
		var secret [tokenBytes]byte
		if _, err := rand.Read(secret[:]); err != nil {
			return "", Token{}, fmt.Errorf("httpapi: issue token: %w", err)
		}
		plaintext = TokenPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	}
	sum := sha256.Sum256([]byte(plaintext))
	if spec.Plaintext != "" {
		var n int64
		if err := db.WithContext(ctx).Model(&Token{}).Where("hash = ?", sum[:]).Count(&n).Error; err != nil {
			return "", Token{}, fmt.Errorf("httpapi: issue token: %w", err)
		}
		if n > 0 {
			return "", Token{}, ErrTokenExists
		}
	}
	tok = Token{
		AccountID: spec.AccountID, Name: spec.Name,
		PrincipalID: spec.PrincipalID, PrincipalType: spec.PrincipalType,
		Hint: plaintext[:len(TokenPrefix)+4], Hash: sum[:],
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	if err := db.WithContext(ctx).Create(&tok).Error; err != nil {
		return "", Token{}, fmt.Errorf("httpapi: issue token: %w", err)
	}
	return plaintext, tok, nil
}

// chosenTokenOK reports whether a chosen token has the prefix and at least
// 128 bits of URL-safe base64 after it.
func chosenTokenOK(s string) bool {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok || len(rest) < 22 || len(rest) > 512 {
		return false
	}
	for _, c := range rest {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ListTokens returns the account's tokens, revoked ones included, oldest
// first.
func ListTokens(ctx context.Context, db *gorm.DB, accountID int64) ([]Token, error) {
	var toks []Token
	if err := db.WithContext(ctx).Where("account_id = ?", accountID).Order("id").Find(&toks).Error; err != nil {
		return nil, fmt.Errorf("httpapi: list tokens: %w", err)
	}
	return toks, nil
}

// RevokeToken revokes the account's token id at once. Revoking a revoked
// token changes nothing. It returns [ErrTokenNotFound] when the account has
// no such token.
func RevokeToken(ctx context.Context, db *gorm.DB, accountID, id int64) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	res := db.WithContext(ctx).Model(&Token{}).
		Where("account_id = ? AND id = ? AND revoked_at IS NULL", accountID, id).
		Update("revoked_at", now)
	if res.Error != nil {
		return fmt.Errorf("httpapi: revoke token: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := db.WithContext(ctx).Model(&Token{}).Where("account_id = ? AND id = ?", accountID, id).Count(&n).Error; err != nil {
		return fmt.Errorf("httpapi: revoke token: %w", err)
	}
	if n == 0 {
		return ErrTokenNotFound
	}
	return nil
}

// NewTokenAuthenticator returns the default [Authenticator]: it reads the
// token from the Authorization header, either raw ("Authorization: <token>",
// the API-key scheme of the hosted endpoint's SDKs) or as a bearer token
// ("Authorization: Bearer <token>", the scheme name in any case, followed by
// any run of spaces), and looks it up in the table of [Migrate]. Tokens are
// found by their SHA-256 hash, so the database never sees or compares the
// secret, and the hash found is compared again in constant time.
func NewTokenAuthenticator(db *gorm.DB) Authenticator {
	return &tokenAuthenticator{db: db}
}

type tokenAuthenticator struct{ db *gorm.DB }

// maxTokenLen bounds the token read from the header; issued tokens are far
// shorter.
const maxTokenLen = 256

// tokenFromHeader returns the token of an Authorization header value: the
// whole value when it has no space (the API-key form), or what follows the
// case-insensitive "Bearer" scheme and its spaces.
func tokenFromHeader(v string) (string, bool) {
	scheme, rest, spaced := strings.Cut(v, " ")
	if !spaced {
		return v, v != "" && len(v) <= maxTokenLen
	}
	secret := strings.TrimLeft(rest, " ")
	if !strings.EqualFold(scheme, "Bearer") || secret == "" || len(secret) > maxTokenLen || strings.Contains(secret, " ") {
		return "", false
	}
	return secret, true
}

func (a *tokenAuthenticator) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return Principal{}, fmt.Errorf("%w: expected one Authorization header", ErrUnauthenticated)
	}
	secret, ok := tokenFromHeader(h[0])
	if !ok {
		return Principal{}, fmt.Errorf("%w: expected Authorization: <token> or Authorization: Bearer <token>", ErrUnauthenticated)
	}
	sum := sha256.Sum256([]byte(secret))
	var tok Token
	err := a.db.WithContext(r.Context()).Where("hash = ?", sum[:]).Limit(1).Find(&tok).Error
	if err != nil {
		return Principal{}, fmt.Errorf("httpapi: look up token: %w", err)
	}
	if tok.ID == 0 || subtle.ConstantTimeCompare(tok.Hash, sum[:]) != 1 {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	if tok.RevokedAt != nil {
		return Principal{}, fmt.Errorf("%w: token %d is revoked", ErrUnauthenticated, tok.ID)
	}
	id := tok.PrincipalID
	if id == "" {
		id = "token:" + strconv.FormatInt(tok.ID, 10)
	}
	return Principal{AccountID: tok.AccountID, ID: id, Type: tok.PrincipalType}, nil
}
