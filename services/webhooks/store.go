package webhooks

import (
	"context"
	"embed"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	webhooksv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/webhooks/v1"
)

//go:embed migrations/*.sql
var migrations embed.FS

type store struct{ db *pgxpool.Pool }

var errNotFound = errors.New("not found")

func (s *store) createEndpoint(ctx context.Context, e *webhooksv1.Endpoint, sealed []byte) error {
	_, err := s.db.Exec(ctx, `INSERT INTO endpoints (id, account_id, url, event_types, description, secret, secret_hint, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.Id, e.AccountId, e.Url, e.EventTypes, e.Description, sealed, e.SecretHint, e.CreatedAt.AsTime())
	return err
}

// countEndpoints is how many endpoints an account has.
func (s *store) countEndpoints(ctx context.Context, account string) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT count(*) FROM endpoints WHERE account_id = $1 AND deleted_at IS NULL`, account).Scan(&n)
	return n, err
}

func scanEndpoint(r pgx.Row) (*webhooksv1.Endpoint, error) {
	e := &webhooksv1.Endpoint{}
	var created time.Time
	if err := r.Scan(&e.Id, &e.AccountId, &e.Url, &e.EventTypes, &e.Description, &e.SecretHint, &created); err != nil {
		return nil, err
	}
	e.CreatedAt = timestamppb.New(created)
	return e, nil
}

func (s *store) endpoints(ctx context.Context, account string) ([]*webhooksv1.Endpoint, error) {
	rows, err := s.db.Query(ctx, `SELECT id, account_id, url, event_types, description, secret_hint, created_at FROM endpoints
		WHERE account_id = $1 AND deleted_at IS NULL ORDER BY seq`, account)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*webhooksv1.Endpoint, error) { return scanEndpoint(r) })
}

// deleteEndpoint removes an endpoint and drops what it had pending (its
// dead letters stay visible).
func (s *store) deleteEndpoint(ctx context.Context, account, id string) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE endpoints SET deleted_at = now() WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL`, id, account)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM deliveries WHERE endpoint_id = $1 AND status = 'pending'`, id)
		return err
	})
}

// enqueue makes a delivery of a notification to each endpoint of its
// account subscribed to its type; one already made is not made again. It
// reports how many were made.
func (s *store) enqueue(ctx context.Context, eventID, eventType, account string, payload func(endpoint string) string) (int, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM endpoints WHERE account_id = $1 AND deleted_at IS NULL AND $2 = ANY(event_types)`, account, eventType)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	made := 0
	for _, ep := range ids {
		tag, err := s.db.Exec(ctx, `INSERT INTO deliveries (id, endpoint_id, account_id, event_id, event_type, payload)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id, endpoint_id) DO NOTHING`,
			deliveryID(eventID, ep), ep, account, eventID, eventType, payload(ep))
		if err != nil {
			return made, err
		}
		made += int(tag.RowsAffected())
	}
	return made, nil
}

// delivery is one claimed delivery and what sending it needs.
type delivery struct {
	id, endpoint, account, eventID, eventType, payload, url string
	secret                                                  []byte
	attempts                                                int32
	firstAttempt                                            time.Time
}

// claim takes the next due delivery whose endpoint has none in flight,
// for lease.
func (s *store) claim(ctx context.Context, lease time.Duration) (*delivery, error) {
	d := &delivery{}
	var first *time.Time
	err := s.db.QueryRow(ctx, `WITH next AS (
			SELECT d.id FROM deliveries d
			WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND (d.lease_until IS NULL OR d.lease_until < now())
			  AND NOT EXISTS (SELECT 1 FROM deliveries x WHERE x.endpoint_id = d.endpoint_id AND x.status = 'pending' AND x.lease_until > now())
			ORDER BY d.next_attempt_at, d.seq LIMIT 1 FOR UPDATE OF d SKIP LOCKED)
		UPDATE deliveries d SET lease_until = now() + $1 * interval '1 millisecond', attempts = d.attempts + 1,
			first_attempt_at = COALESCE(d.first_attempt_at, now())
		FROM next, endpoints e WHERE d.id = next.id AND e.id = d.endpoint_id
		RETURNING d.id, d.endpoint_id, d.account_id, d.event_id, d.event_type, d.payload, e.url, e.secret, d.attempts, d.first_attempt_at`,
		lease.Milliseconds()).Scan(&d.id, &d.endpoint, &d.account, &d.eventID, &d.eventType, &d.payload, &d.url, &d.secret, &d.attempts, &first)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if first != nil {
		d.firstAttempt = *first
	}
	return d, err
}

func (s *store) delivered(ctx context.Context, id string, status int) error {
	_, err := s.db.Exec(ctx, `UPDATE deliveries SET status = 'delivered', last_status = $2, last_error = '', lease_until = NULL, finished_at = now() WHERE id = $1`, id, status)
	return err
}

func (s *store) retryAt(ctx context.Context, id string, at time.Time, status int, msg string) error {
	_, err := s.db.Exec(ctx, `UPDATE deliveries SET next_attempt_at = $2, last_status = $3, last_error = $4, lease_until = NULL WHERE id = $1`, id, at, status, msg)
	return err
}

func (s *store) dead(ctx context.Context, id string, status int, msg string) error {
	_, err := s.db.Exec(ctx, `UPDATE deliveries SET status = 'dead', last_status = $2, last_error = $3, lease_until = NULL, finished_at = now() WHERE id = $1`, id, status, msg)
	return err
}

func (s *store) deadLetters(ctx context.Context, account, after string, limit int32) ([]*webhooksv1.DeadLetter, bool, error) {
	rows, err := s.db.Query(ctx, `SELECT id, endpoint_id, account_id, event_id, event_type, attempts, last_status, last_error, first_attempt_at, finished_at, payload
		FROM deliveries WHERE account_id = $1 AND status = 'dead'
		AND ($2 = '' OR seq < (SELECT seq FROM deliveries WHERE id = $2 AND account_id = $1)) ORDER BY seq DESC LIMIT `+strconv.Itoa(int(limit)+1), account, after)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*webhooksv1.DeadLetter, error) {
		d := &webhooksv1.DeadLetter{}
		var first, dead time.Time
		if err := r.Scan(&d.Id, &d.EndpointId, &d.AccountId, &d.EventId, &d.EventType, &d.Attempts, &d.LastStatus, &d.LastError, &first, &dead, &d.Payload); err != nil {
			return nil, err
		}
		d.FirstAttemptAt, d.DeadAt = timestamppb.New(first), timestamppb.New(dead)
		return d, nil
	})
	if err != nil {
		return nil, false, err
	}
	more := len(out) > int(limit)
	if more {
		out = out[:limit]
	}
	return out, more, nil
}
