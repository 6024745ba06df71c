package audit_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/gormaudit/gormaudit/audit"
	"github.com/gormaudit/gormaudit/runbooks"
)

func TestWhoWhereAndWhyComeFromTheContext(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{})
	ctx := audit.WithActor(context.Background(), audit.Actor{ID: "bot-1", Type: "BotUser"})
	ctx = audit.WithComment(ctx, "rotating on-call")
	ctx = audit.WithRequest(ctx, audit.Request{RemoteAddress: "203.0.113.9", UUID: "9b2c6c8e-1d7a-4c55-8f0e-2b6f0f1e9a11"})
	rb := runbooks.Runbook{AccountID: 42, Name: "r"}
	require.NoError(t, b.db.WithContext(ctx).Create(&rb).Error)
	// An actor without a type is a User.
	require.NoError(t, b.db.WithContext(audit.WithActor(context.Background(), audit.Actor{ID: "u-2"})).
		Model(&rb).Update("name", "r2").Error)
	// No actor at all: the row is still written, without a user.
	require.NoError(t, b.db.Model(&rb).Update("name", "r3").Error)

	type who struct {
		Account                                    int64
		UserID, UserType, Comment, Remote, Request string
	}
	var got []who
	for _, a := range b.audits(t) {
		got = append(got, who{a.AccountID, a.UserID, a.UserType, a.Comment, a.RemoteAddress, a.RequestUUID})
	}
	want := []who{
		{42, "bot-1", "BotUser", "rotating on-call", "203.0.113.9", "9b2c6c8e-1d7a-4c55-8f0e-2b6f0f1e9a11"},
		{42, "u-2", "User", "", "", ""},
		{42, "", "", "", "", ""},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func TestRequireActorRefusesAnonymousWrites(t *testing.T) {
	t.Parallel()
	b := setup(t, audit.Config{RequireActor: true})
	anon := b.db.WithContext(context.Background())

	rb := runbooks.Runbook{AccountID: 1, Name: "r"}
	require.ErrorIs(t, anon.Create(&rb).Error, audit.ErrNoActor)
	var n int64
	require.NoError(t, b.db.Model(&runbooks.Runbook{}).Count(&n).Error)
	require.Zero(t, n, "the refused create must not be written")

	rb = runbooks.Runbook{AccountID: 1, Name: "r"}
	require.NoError(t, b.w().Create(&rb).Error)
	require.ErrorIs(t, anon.Model(&rb).Update("name", "anon").Error, audit.ErrNoActor)
	require.ErrorIs(t, anon.Delete(&rb).Error, audit.ErrNoActor)
	var got runbooks.Runbook
	require.NoError(t, b.db.Take(&got, "id = ?", rb.ID).Error)
	require.Equal(t, "r", got.Name)
	require.Len(t, b.audits(t), 1)
}
