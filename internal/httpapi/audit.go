package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/authly/authly/internal/gen/api"
	"github.com/authly/authly/internal/service"
)

const defaultAuditPageSize = 50

// ListAuditEvents returns a page of the audit log.
func (a *API) ListAuditEvents(ctx context.Context, req api.ListAuditEventsRequestObject) (api.ListAuditEventsResponseObject, error) {
	p := req.Params
	query := service.AuditQuery{UserID: p.UserId, Limit: defaultAuditPageSize}
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
			return nil, service.InvalidFields(service.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
		}
		query.After = &after
	}
	events, next, err := a.svc.ListAuditEvents(ctx, callerFrom(ctx).principal, query)
	if err != nil {
		return nil, err
	}
	page := api.AuditEventPage{Events: make([]api.AuditEvent, len(events))}
	for i, e := range events {
		page.Events[i] = api.AuditEvent{
			Id:        e.ID,
			EventType: api.AuditEventType(e.Type),
			UserId:    e.UserID,
			Ip:        e.IP,
			UserAgent: e.UserAgent,
			Details:   e.Details,
			CreatedAt: e.CreatedAt,
		}
	}
	if next != nil {
		cursor := encodeAuditCursor(*next)
		page.NextCursor = &cursor
	}
	return api.ListAuditEvents200JSONResponse{Body: page, Headers: api.ListAuditEvents200ResponseHeaders{CacheControl: noStore()}}, nil
}

// An audit cursor is opaque to clients: the last event's creation time in Unix microseconds
// and its id, 16 bytes in unpadded base64url.
func encodeAuditCursor(c service.AuditCursor) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.CreatedAt.UnixMicro()))
	binary.BigEndian.PutUint64(b[8:], uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeAuditCursor(s string) (service.AuditCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return service.AuditCursor{}, false
	}
	return service.AuditCursor{
		CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[:8]))),
		ID:        int64(binary.BigEndian.Uint64(b[8:])),
	}, true
}
