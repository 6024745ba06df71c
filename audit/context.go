package audit

import "context"

// Actor is who made a change: it fills an audit row's user_id and user_type.
type Actor struct {
	// ID is the actor's identifier, typically a UUID.
	ID string
	// Type is the actor's kind, such as "User" or "BotUser". Defaults to
	// "User" when empty.
	Type string
}

// Request describes the request a change was made in. Its fields fill an
// audit row's remote_address and request_uuid.
type Request struct {
	RemoteAddress string
	UUID          string
}

type ctxKey int

const (
	actorKey ctxKey = iota
	commentKey
	requestKey
)

// WithActor returns a context whose writes are attributed to actor. Pass it
// to gorm with db.WithContext(ctx).
func WithActor(ctx context.Context, actor Actor) context.Context {
	if actor.Type == "" {
		actor.Type = "User"
	}
	return context.WithValue(ctx, actorKey, actor)
}

// ActorFrom returns the actor set by WithActor, if any.
func ActorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey).(Actor)
	return a, ok
}

// WithComment returns a context whose audit rows carry comment, such as
// "reverted to version 3".
func WithComment(ctx context.Context, comment string) context.Context {
	return context.WithValue(ctx, commentKey, comment)
}

// WithRequest returns a context whose audit rows record the request's remote
// address and UUID.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey, r)
}

// who fills the context-derived columns of a new audit row.
func who(ctx context.Context, a *Audit) (hasActor bool) {
	if ctx == nil {
		return false
	}
	actor, hasActor := ActorFrom(ctx)
	a.UserID, a.UserType = actor.ID, actor.Type
	if c, ok := ctx.Value(commentKey).(string); ok {
		a.Comment = c
	}
	if r, ok := ctx.Value(requestKey).(Request); ok {
		a.RemoteAddress, a.RequestUUID = r.RemoteAddress, r.UUID
	}
	return hasActor
}
