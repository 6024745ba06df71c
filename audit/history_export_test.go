package audit

import (
	"context"

	"gorm.io/gorm"
)

// StateAtForward is StateAt replaying forward whenever the history allows
// it, however short; forward reports whether it did.
func StateAtForward(ctx context.Context, db *gorm.DB, typ, id string, version int) (s *State, forward bool, err error) {
	h, prefix, ok, err := loadPrefix(ctx, db, Ref{typ, id}, version, ReadOptions{}, true)
	if err != nil || !ok {
		return nil, false, err
	}
	if s, ok := h.replay(prefix, version); ok {
		return s, true, nil
	}
	return nil, false, nil
}

// StateAtBackward is StateAt always walking backward from the current row.
func StateAtBackward(ctx context.Context, db *gorm.DB, typ, id string, version int) (*State, error) {
	return stateAt(ctx, db, Ref{typ, id}, version, ReadOptions{}, false)
}
