package auth

import (
	"context"
	"embed"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
)

//go:embed migrations/*.sql
var migrations embed.FS

type store struct{ db *pgxpool.Pool }

// keyRow is a stored key with its hash.
type keyRow struct {
	key  *authv1.ApiKey
	hash string
}

const keyColumns = `id, account_id, name, prefix, role, created_at, expires_at, revoked_at, last_used_at, hash`

func scanKey(row pgx.Row) (keyRow, error) {
	var k authv1.ApiKey
	var role, hash string
	var created time.Time
	var expires, revoked, used *time.Time
	if err := row.Scan(&k.Id, &k.AccountId, &k.Name, &k.Prefix, &role, &created, &expires, &revoked, &used, &hash); err != nil {
		return keyRow{}, err
	}
	k.Role = roleOf(role)
	k.CreatedAt = timestamppb.New(created)
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = ts(expires), ts(revoked), ts(used)
	return keyRow{key: &k, hash: hash}, nil
}

func ts(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func roleOf(s string) authv1.Role {
	if s == "admin" {
		return authv1.Role_ROLE_ADMIN
	}
	return authv1.Role_ROLE_USER
}

func (s *store) insert(ctx context.Context, k *authv1.ApiKey, hash string) (*authv1.ApiKey, error) {
	var expires *time.Time
	if k.ExpiresAt != nil {
		t := k.ExpiresAt.AsTime()
		expires = &t
	}
	role := "user"
	if k.Role == authv1.Role_ROLE_ADMIN {
		role = "admin"
	}
	r, err := scanKey(s.db.QueryRow(ctx, `INSERT INTO api_keys (id, account_id, name, prefix, hash, role, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+keyColumns, k.Id, k.AccountId, k.Name, k.Prefix, hash, role, expires))
	return r.key, err
}

var errNoKey = errors.New("no such key")

func (s *store) byHash(ctx context.Context, hash string) (keyRow, error) {
	r, err := scanKey(s.db.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, errNoKey
	}
	return r, err
}

// list pages by creation time then id; after is the last id of the
// previous page.
func (s *store) list(ctx context.Context, account string, revoked bool, limit int, after string) ([]*authv1.ApiKey, error) {
	rows, err := s.db.Query(ctx, `SELECT `+keyColumns+` FROM api_keys
		WHERE account_id = $1 AND ($2 OR revoked_at IS NULL)
		  AND ($4 = '' OR (created_at, id) > (SELECT created_at, id FROM api_keys WHERE id = $4))
		ORDER BY created_at, id LIMIT $3`, account, revoked, limit, after)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*authv1.ApiKey, error) {
		k, err := scanKey(r)
		return k.key, err
	})
}

func (s *store) revoke(ctx context.Context, id string) (keyRow, error) {
	r, err := scanKey(s.db.QueryRow(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
		WHERE id = $1 RETURNING `+keyColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, errNoKey
	}
	return r, err
}

func (s *store) touch(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, `UPDATE api_keys SET last_used_at = now() WHERE id = $1`, id)
	return err
}
