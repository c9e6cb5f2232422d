package provision

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func connectPostgres(ctx context.Context, dsn string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("provision: postgres: %w", err)
	}
	return conn, nil
}

// databaseFor gives service its database, owned by a role of the same
// name that cannot log in: the service logs in with short-lived users that
// Vault's database secrets engine creates as members of that role (see
// dbengine.go), and works as the owner role (SET ROLE), so what it creates
// outlives each user. It returns the database's URL without credentials.
func databaseFor(ctx context.Context, pg *pgx.Conn, service, host string, port int) (string, error) {
	role := pgx.Identifier{service}.Sanitize()
	var exists bool
	if err := pg.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, service).Scan(&exists); err != nil {
		return "", err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	if _, err := pg.Exec(ctx, fmt.Sprintf(`%s ROLE %s NOLOGIN`, verb, role)); err != nil {
		return "", fmt.Errorf("role: %w", err)
	}
	if err := pg.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, service).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := pg.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, role, role)); err != nil {
			return "", fmt.Errorf("database: %w", err)
		}
	}
	if _, err := pg.Exec(ctx, fmt.Sprintf(`REVOKE ALL ON DATABASE %s FROM PUBLIC`, role)); err != nil {
		return "", err
	}
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		Path:     "/" + service,
		RawQuery: "sslmode=disable",
	}
	return u.String(), nil
}

func connectRedis(addr, password string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: password})
}

// redisUserFor gives service its own ACL user whose keys must start with
// "SERVICE:", without administrative or dangerous commands, and returns its
// URL.
func redisUserFor(ctx context.Context, rd *redis.Client, service, addr, password string) (string, error) {
	password, err := redisUser(ctx, rd, service, password)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "redis", User: url.UserPassword(service, password), Host: addr, Path: "/0"}
	return u.String(), nil
}

// saveRedisUsers writes the ACL users to the server's ACL file, so that
// they survive its restart, when it has one (a cluster's Redis; the local
// one is provisioned at each start and has none).
func saveRedisUsers(ctx context.Context, rd *redis.Client) error {
	err := rd.Do(ctx, "ACL", "SAVE").Err()
	if err != nil && !strings.Contains(err.Error(), "not configured to use an ACL file") {
		return fmt.Errorf("redis ACL SAVE: %w", err)
	}
	return nil
}

// redisPasswordIn is the Redis password of a service's secret ("" when
// it has none).
func redisPasswordIn(secret map[string]any) string {
	s, _ := secret["redis_url"].(string)
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// redisUser creates (or resets) that ACL user, with password (a new one
// when empty), and returns its password.
func redisUser(ctx context.Context, rd *redis.Client, service, password string) (string, error) {
	if password == "" {
		password = randomHex(24)
	}
	err := rd.Do(ctx, "ACL", "SETUSER", service, "reset", "on", ">"+password,
		"~"+service+":*", "&"+service+":*", "+@all", "-@admin", "-@dangerous").Err()
	if err != nil {
		return "", fmt.Errorf("redis ACL: %w", err)
	}
	return password, nil
}
