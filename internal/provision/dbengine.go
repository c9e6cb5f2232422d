package provision

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"

	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// setupDatabaseEngine points Vault's database secrets engine at
// PostgreSQL with the administrative connection.
func setupDatabaseEngine(ctx context.Context, v *vault.Client, adminDSN string) error {
	mounts, err := v.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("provision: vault mounts: %w", err)
	}
	if _, ok := mounts[bhvault.DatabaseMount+"/"]; !ok {
		if err := v.Sys().MountWithContext(ctx, bhvault.DatabaseMount, &vault.MountInput{Type: "database"}); err != nil {
			return fmt.Errorf("provision: mount %s: %w", bhvault.DatabaseMount, err)
		}
	}
	cfg, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		return fmt.Errorf("provision: postgres DSN: %w", err)
	}
	u := url.URL{
		Scheme:   "postgresql",
		Host:     net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))),
		Path:     "/" + cfg.Database,
		RawQuery: "sslmode=disable",
	}
	// Vault substitutes {{username}} and {{password}}; url.URL would escape
	// the braces.
	conn := u.Scheme + "://{{username}}:{{password}}@" + u.Host + u.Path + "?" + u.RawQuery
	if _, err := v.Logical().WriteWithContext(ctx, bhvault.DatabaseMount+"/config/"+bhvault.DatabaseConnection, map[string]any{
		"plugin_name":       "postgresql-database-plugin",
		"connection_url":    conn,
		"username":          cfg.User,
		"password":          cfg.Password,
		"allowed_roles":     "*",
		"verify_connection": true,
	}); err != nil {
		return fmt.Errorf("provision: vault database connection: %w", err)
	}
	return nil
}

// databaseRole lets Vault create short-lived PostgreSQL users for a
// service: members of its owner role, valid for ttl, dropped at expiry.
func databaseRole(ctx context.Context, v *vault.Client, service string, ttl time.Duration) error {
	owner := pgx.Identifier{service}.Sanitize()
	_, err := v.Logical().WriteWithContext(ctx, bhvault.DatabaseMount+"/roles/"+service, map[string]any{
		"db_name": bhvault.DatabaseConnection,
		"creation_statements": []string{
			`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE ` + owner + `;`,
		},
		"revocation_statements": []string{
			`REVOKE ` + owner + ` FROM "{{name}}";`,
			`DROP ROLE IF EXISTS "{{name}}";`,
		},
		"default_ttl": ttl.String(),
		"max_ttl":     (4 * ttl).String(),
	})
	if err != nil {
		return fmt.Errorf("provision: vault database role %s: %w", service, err)
	}
	return nil
}
