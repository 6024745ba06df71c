package audit

// The history calls ([StateAt], [StateAsOf], [StatesAsOf],
// [StatesAfterAudit], [Diff]) take a *ReadOptions; the reverts ([Revert],
// [RevertAsOf], [RevertAllAsOf], [RevertAllAfterAudit], and the runbooks
// package's) take a *RevertOptions. They are distinct types, so the options
// of a revert (a dry run, say) cannot be passed to a history call: that does
// not compile. A nil pointer means the defaults, the zero value of each
// field.

// ReadOptions adjusts a history call. The zero value, or a nil
// *ReadOptions, reads any account's records and fails on schema drift.
type ReadOptions struct {
	// AccountID scopes the call to one account: a record of any other
	// account is refused with an [*AccountError] (errors.Is
	// [ErrOtherAccount]) before anything is read back or written. Set it
	// wherever the account comes from a caller that may only see its own
	// records. Defaults to nil: records of any account.
	AccountID *int64
	// SkipSchemaDrift makes a rebuild skip columns it cannot rebuild
	// because the model changed since they were recorded, instead of
	// failing with a [*DriftError]. Skipped columns are listed in
	// [State].Skipped and [RecordPlan].Skipped; a revert leaves them at
	// their current values (or their zero values, for a record it
	// re-inserts). Defaults to false: drift is an error.
	SkipSchemaDrift bool
}

// RevertOptions adjusts a revert. The zero value, or a nil *RevertOptions,
// writes the revert, reports nothing and comments it with its default
// description. The embedded [ReadOptions] apply to the rebuild the revert
// starts with. Every combination of fields is valid, so a revert has no
// option errors: DryRun without a Plan checks that the revert would
// succeed.
type RevertOptions struct {
	ReadOptions
	// DryRun makes the revert write nothing; the errors are those the
	// revert itself would return. Defaults to false: the revert is
	// written.
	DryRun bool
	// Plan, if set, receives what the revert wrote, or with DryRun what
	// it would write; it is left alone when the revert fails. Defaults to
	// nil: nothing is reported.
	Plan *Plan
	// Comment replaces the description the revert puts in the comment of
	// its audit rows, "revert to version N" or "revert to <time>" by
	// default. A comment already in the context ([WithComment]) comes
	// first, with the description in parentheses after it. Defaults to
	// "": the description.
	Comment string
}

// readOptions returns the options a nil o stands for, or *o.
func readOptions(o *ReadOptions) ReadOptions {
	if o == nil {
		return ReadOptions{}
	}
	return *o
}

// revertOptions returns the options a nil o stands for, or *o.
func revertOptions(o *RevertOptions) RevertOptions {
	if o == nil {
		return RevertOptions{}
	}
	return *o
}
