package audit

// The history calls ([StateAt], [StateAsOf], [StatesAsOf],
// [StatesAfterAudit], [Diff]) take ReadOptions; the reverts ([Revert],
// [RevertAsOf], [RevertAllAsOf], [RevertAllAfterAudit], and the runbooks
// package's) take RevertOptions. An option that only makes sense when
// writing, such as [DryRun], is a RevertOption only, so passing it to a
// history call does not compile; the options both kinds of call understand
// ([InAccount], [SkipSchemaDrift]) are an [Option], which is both.

// ReadOption adjusts a history call.
type ReadOption interface{ applyRead(*options) }

// RevertOption adjusts a revert.
type RevertOption interface{ applyRevert(*options) }

// Option is an option of both history calls and reverts.
type Option interface {
	ReadOption
	RevertOption
}

type options struct {
	account   *int64
	skipDrift bool
	dryRun    *Plan
	report    *Plan
	comment   string
}

// anyOption is an option of both kinds of call.
type anyOption func(*options)

func (f anyOption) applyRead(o *options)   { f(o) }
func (f anyOption) applyRevert(o *options) { f(o) }

// revertOnly is an option of reverts only.
type revertOnly func(*options)

func (f revertOnly) applyRevert(o *options) { f(o) }

func readOptions(opts []ReadOption) *options {
	o := &options{}
	for _, opt := range opts {
		if opt != nil {
			opt.applyRead(o)
		}
	}
	return o
}

func revertOptions(opts []RevertOption) *options {
	o := &options{}
	for _, opt := range opts {
		if opt != nil {
			opt.applyRevert(o)
		}
	}
	return o
}

// ReadOptionsOf returns the options of opts that history calls understand
// too, in order: what a revert built on history calls passes to them.
func ReadOptionsOf(opts []RevertOption) []ReadOption {
	var out []ReadOption
	for _, opt := range opts {
		if r, ok := opt.(ReadOption); ok {
			out = append(out, r)
		}
	}
	return out
}

// InAccount scopes a call to one account: a record of any other account is
// refused with an [*AccountError] (errors.Is [ErrOtherAccount]) before
// anything is read back or written. Use it wherever the account comes from
// a caller that may only see its own records.
func InAccount(accountID int64) Option {
	return anyOption(func(o *options) { o.account = &accountID })
}

// SkipSchemaDrift makes a rebuild skip columns it cannot rebuild because the
// model changed since they were recorded, instead of failing with a
// [*DriftError]. Skipped columns are listed in [State].Skipped and
// [RecordPlan].Skipped; a revert leaves them at their current values (or
// their zero values, for a record it re-inserts).
func SkipSchemaDrift() Option {
	return anyOption(func(o *options) { o.skipDrift = true })
}

// DryRun makes a revert write nothing and store what it would write in plan.
// The errors are those the revert itself would return.
func DryRun(plan *Plan) RevertOption {
	return revertOnly(func(o *options) { o.dryRun = plan })
}

// ReportTo makes a revert store what it wrote in plan.
func ReportTo(plan *Plan) RevertOption {
	return revertOnly(func(o *options) { o.report = plan })
}

// RevertComment replaces the description a revert puts in the comment of its
// audit rows, "revert to version N" or "revert to <time>" by default. A
// comment already in the context ([WithComment]) comes first, with the
// description in parentheses after it.
func RevertComment(comment string) RevertOption {
	return revertOnly(func(o *options) { o.comment = comment })
}
