package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/gormaudit/gormaudit/internal/auditsql"
)

// ArchiveChunk is one manifest line of an archive written by [Prune]: what
// the archive holds of one partition dropped whole, or of one batch of
// deleted rows, so that a reader can check that nothing is missing.
type ArchiveChunk struct {
	// Partition names the partition, for a partition; "" for a batch.
	Partition string `json:"partition,omitempty"`
	// FromID and ToID are the ids a batch covered, [FromID, ToID); 0 for
	// a partition.
	FromID int64 `json:"from_id,omitempty"`
	ToID   int64 `json:"to_id,omitempty"`
	// Count is the number of rows of the chunk; FirstID and LastID are the
	// ids of its first and last rows, which come in id order.
	Count   int64 `json:"count"`
	FirstID int64 `json:"first_id"`
	LastID  int64 `json:"last_id"`
}

// add counts row id into c.
func (c *ArchiveChunk) add(id int64) {
	if c.Count == 0 {
		c.FirstID = id
	}
	c.Count++
	c.LastID = id
}

// manifestLine is the JSON of a manifest line: {"manifest": {...}}.
type manifestLine struct {
	Manifest ArchiveChunk `json:"manifest"`
}

var manifestPrefix = []byte(`{"manifest":`)

// ErrArchiveIncomplete is returned by [ReadArchive] for an archive whose
// rows do not match its manifest lines: a row missing, out of order or
// after the last manifest line.
var ErrArchiveIncomplete = errors.New("audit: archive does not match its manifest")

// archiveWriter writes the JSON Lines of an archive, gzip-compressed.
type archiveWriter struct {
	dst io.Writer
	buf *bufio.Writer
	gz  *gzip.Writer
	enc *json.Encoder
}

func newArchiveWriter(w io.Writer) *archiveWriter {
	buf := bufio.NewWriterSize(w, 64<<10)
	gz := gzip.NewWriter(buf)
	return &archiveWriter{dst: w, buf: buf, gz: gz, enc: json.NewEncoder(gz)}
}

// rows writes each of rows as one line in the audit-row format, counting
// them into c.
func (aw *archiveWriter) rows(c *ArchiveChunk, rows []auditsql.Stored) error {
	for i := range rows {
		if err := aw.row(c, &rows[i]); err != nil {
			return err
		}
	}
	return nil
}

// row writes s as one line in the audit-row format and counts it into c.
func (aw *archiveWriter) row(c *ArchiveChunk, s *auditsql.Stored) error {
	a := Audit{ID: s.ID, AccountID: s.AccountID, AuditableID: s.AuditableID, AuditableType: s.AuditableType,
		AssociatedID: s.AssociatedID, AssociatedType: s.AssociatedType, UserID: s.UserID, UserType: s.UserType,
		Action: Action(s.Action), Version: s.Version, Comment: s.Comment, RemoteAddress: s.RemoteAddress,
		RequestUUID: s.RequestUUID, CreatedAt: s.CreatedAt, TransactionID: s.TransactionID}
	if err := a.AuditedChanges.Scan(s.Changes); err != nil {
		return fmt.Errorf("audit row %d: %w", s.ID, err)
	}
	if err := aw.enc.Encode(a); err != nil {
		return err
	}
	c.add(s.ID)
	return nil
}

// manifest writes c's manifest line.
func (aw *archiveWriter) manifest(c ArchiveChunk) error {
	return aw.enc.Encode(manifestLine{c})
}

// close ends the gzip stream, flushes it to the destination, and syncs a
// destination that can be synced.
func (aw *archiveWriter) close() error {
	if err := aw.gz.Close(); err != nil {
		return err
	}
	if err := aw.buf.Flush(); err != nil {
		return err
	}
	if s, ok := aw.dst.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// archive writes every row p removes to w: the partitions first, then the
// batches, each followed by its manifest line. Nothing is removed unless
// it succeeds.
func (p *prunePlan) archive(w io.Writer, report *PruneReport) error {
	aw := newArchiveWriter(w)
	p.partRows, p.batchCount = map[string]int64{}, map[int64]int64{}
	var chunks []ArchiveChunk
	fail := func(err error) error {
		return fmt.Errorf("audit: prune: archive (nothing was removed): %w", err)
	}
	for _, part := range p.partitions {
		c := ArchiveChunk{Partition: part.Name}
		for after := int64(-1 << 63); ; {
			rows, err := auditsql.PartitionRows(p.q, part, after, p.opts.BatchSize)
			if err == nil {
				err = aw.rows(&c, rows)
			}
			if err != nil {
				return fail(fmt.Errorf("partition %s: %w", part.Name, err))
			}
			if len(rows) < p.opts.BatchSize {
				break
			}
			after = rows[len(rows)-1].ID
		}
		if err := aw.manifest(c); err != nil {
			return fail(err)
		}
		p.partRows[part.Name] = c.Count
		chunks = append(chunks, c)
	}
	step := int64(p.opts.BatchSize)
	for from := p.lo; from < p.hi; from += step {
		c := ArchiveChunk{FromID: from, ToID: min(from+step, p.hi)}
		rows, err := auditsql.PrunedRows(p.q, &p.scope, c.FromID, c.ToID)
		if err == nil {
			err = aw.rows(&c, rows)
		}
		if err != nil {
			return fail(err)
		}
		if c.Count == 0 {
			continue
		}
		if err := aw.manifest(c); err != nil {
			return fail(err)
		}
		p.batchCount[from] = c.Count
		chunks = append(chunks, c)
	}
	if err := aw.close(); err != nil {
		return fail(err)
	}
	p.archived, report.Archived = true, chunks
	return nil
}

// ReadArchive reads an archive written by [Prune], calls fn (if not nil)
// with each audit row in order, and returns its manifest. It checks that
// the archive is complete: every row belongs to a chunk, rows come in id
// order, and each chunk's rows match its manifest line's count and first
// and last ids; otherwise it returns an error matching
// [ErrArchiveIncomplete]. An error of fn is returned as is.
//
// The archive is gzip-compressed JSON Lines. A line is either one audit
// row in the audit-row format ([Audit]'s JSON, as the httpapi package
// lists it), or the manifest line {"manifest": {...}} ([ArchiveChunk]'s
// JSON) that follows the rows of each chunk. The chunks come in the order
// [PruneReport].Archived lists them.
func ReadArchive(r io.Reader, fn func(Audit) error) ([]ArchiveChunk, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("audit: read archive: %w", err)
	}
	br := bufio.NewReaderSize(gz, 64<<10)
	var chunks []ArchiveChunk
	var cur ArchiveChunk // what the rows since the last manifest line hold
	incomplete := func(format string, args ...any) error {
		return fmt.Errorf("%w: chunk %d: %s", ErrArchiveIncomplete, len(chunks)+1, fmt.Sprintf(format, args...))
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil {
			return chunks, fmt.Errorf("audit: read archive: %w", err)
		}
		if bytes.HasPrefix(line, manifestPrefix) {
			var m manifestLine
			if err := json.Unmarshal(line, &m); err != nil {
				return chunks, incomplete("manifest line: %v", err)
			}
			got := m.Manifest
			got.Count, got.FirstID, got.LastID = cur.Count, cur.FirstID, cur.LastID
			if got != m.Manifest {
				return chunks, incomplete("%d rows, ids %d to %d; the manifest says %d rows, ids %d to %d",
					cur.Count, cur.FirstID, cur.LastID, m.Manifest.Count, m.Manifest.FirstID, m.Manifest.LastID)
			}
			if got.ToID > 0 && got.Count > 0 && (got.FirstID < got.FromID || got.LastID >= got.ToID) {
				return chunks, incomplete("ids %d to %d outside the batch's ids %d to %d",
					got.FirstID, got.LastID, got.FromID, got.ToID-1)
			}
			chunks, cur = append(chunks, m.Manifest), ArchiveChunk{}
			continue
		}
		var a Audit
		if err := json.Unmarshal(line, &a); err != nil {
			return chunks, incomplete("row %d: %v", cur.Count+1, err)
		}
		if cur.Count > 0 && a.ID <= cur.LastID {
			return chunks, incomplete("row %d has id %d after id %d", cur.Count+1, a.ID, cur.LastID)
		}
		cur.add(a.ID)
		if fn != nil {
			if err := fn(a); err != nil {
				return chunks, err
			}
		}
	}
	if cur.Count > 0 {
		return chunks, incomplete("%d rows after the last manifest line", cur.Count)
	}
	return chunks, nil
}
