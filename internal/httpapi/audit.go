package service

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/gen/db"
)

const defaultAuditPageSize = 50

// ListAuditEvents returns a page of the audit log.
func (a *API) ListAuditEvents(ctx context.Context, req api.ListAuditEventsRequestObject) (api.ListAuditEventsResponseObject, error) {
	p := req.Params
	query := AuditQuery{UserID: p.UserId, Limit: defaultAuditPageSize}
	if p.EventType != nil {
		t := string(*p.EventType)
		query.EventType = &t
	}
	if p.Limit != nil {
		query.Limit = *p.Limit
	}
	if p.Cursor != nil {
		after, ok := decodeAuditCursor(*p.Cursor)
		if !ok {
			return nil, invalidFields(FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
		}
		query.After = &after
	}
	events, next, err := a.svc.ListAuditEvents(ctx, principalFrom(ctx), query)
	if err != nil {
		return nil, err
	}
	page := api.AuditEventPage{Events: make([]api.AuditEvent, len(events))}
	for i, e := range events {
		if page.Events[i], err = auditEventResponse(e); err != nil {
			return nil, internal(err)
		}
	}
	if next != nil {
		cursor := encodeAuditCursor(*next)
		page.NextCursor = &cursor
	}
	return api.ListAuditEvents200JSONResponse{Body: page, Headers: api.ListAuditEvents200ResponseHeaders{CacheControl: noStore()}}, nil
}

func auditEventResponse(e db.AuditEvent) (api.AuditEvent, error) {
	details := map[string]any{}
	if err := json.Unmarshal(e.Details, &details); err != nil {
		return api.AuditEvent{}, err
	}
	return api.AuditEvent{
		Id:        e.ID,
		EventType: api.AuditEventType(e.EventType),
		UserId:    e.UserID,
		Ip:        e.Ip,
		UserAgent: e.UserAgent,
		Details:   details,
		CreatedAt: e.CreatedAt,
	}, nil
}

// An audit cursor is opaque to clients: the last event's creation time in Unix microseconds
// and its id, 16 bytes in unpadded base64url.
func encodeAuditCursor(c AuditCursor) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.CreatedAt.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeAuditCursor(s string) (AuditCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return AuditCursor{}, false
	}
	return AuditCursor{
		CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))),
		ID:        int64(binary.BigEndian.Uint64(b[8:])),
	}, true
}
