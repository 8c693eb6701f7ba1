package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/db"
)

// AuditEvent is one recorded security event, as the audit log shows it.
type AuditEvent struct {
	ID        int64
	Type      string     // one of AuditEventTypes
	UserID    *uuid.UUID // nil when the event is about no user, or the user was deleted
	IP        *string
	UserAgent *string
	Details   map[string]any
	CreatedAt time.Time
}

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
func (s *Service) ListAuditEvents(ctx context.Context, actor Principal, query AuditQuery) ([]AuditEvent, *AuditCursor, error) {
	if !actor.User.IsAdmin {
		return nil, nil, errForbidden("Admin rights are required.")
	}
	if query.Limit < 1 || query.Limit > 100 {
		return nil, nil, InvalidFields(FieldError{Field: "limit", Message: "must be from 1 to 100"})
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
	rows, err := s.queries().ListAuditEvents(ctx, params)
	if err != nil {
		return nil, nil, dbError(err)
	}
	var next *AuditCursor
	if len(rows) > query.Limit {
		rows = rows[:query.Limit]
		last := rows[len(rows)-1]
		next = &AuditCursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	events := make([]AuditEvent, len(rows))
	for i, r := range rows {
		details := map[string]any{}
		if err := json.Unmarshal(r.Details, &details); err != nil {
			return nil, nil, Internal(fmt.Errorf("audit event %d: details: %w", r.ID, err))
		}
		events[i] = AuditEvent{ID: r.ID, Type: r.EventType, UserID: r.UserID, IP: r.Ip, UserAgent: r.UserAgent,
			Details: details, CreatedAt: r.CreatedAt}
	}
	return events, next, nil
}
