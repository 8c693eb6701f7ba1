package service

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
)

// AuditQuery selects a page of audit events. Nil filters select everything.
type AuditQuery struct {
	UserID    *uuid.UUID
	EventType *string
	Limit     int          // 1..100
	After     *AuditCursor // the last event of the previous page; nil for the first page
}

// AuditCursor is where a page of audit events ends: events are ordered by (CreatedAt, ID),
// newest first.
type AuditCursor struct {
	CreatedAt time.Time
	ID        int64
}

// ListAuditEvents returns a page of audit events, newest first, and the cursor of the next
// page, or nil on the last. Only admins may.
//
// Errors: forbidden; invalid (limit); unavailable; internal.
func (s *Service) ListAuditEvents(ctx context.Context, actor Principal, query AuditQuery) ([]db.AuditEvent, *AuditCursor, error) {
	if !actor.User.IsAdmin {
		return nil, nil, errForbidden("Admin rights are required.")
	}
	if query.Limit < 1 || query.Limit > 100 {
		return nil, nil, invalidFields(FieldError{Field: "limit", Message: "must be from 1 to 100"})
	}
	params := db.ListAuditEventsParams{
		UserID:    query.UserID,
		EventType: query.EventType,
		// One more than asked tells whether another page follows.
		MaxRows: int32(query.Limit + 1),
	}
	if query.After != nil {
		params.BeforeCreatedAt, params.BeforeID = &query.After.CreatedAt, query.After.ID
	}
	events, err := s.q.ListAuditEvents(ctx, params)
	if err != nil {
		return nil, nil, dbError(err)
	}
	if len(events) <= query.Limit {
		return events, nil, nil
	}
	events = events[:query.Limit]
	last := events[len(events)-1]
	return events, &AuditCursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}
