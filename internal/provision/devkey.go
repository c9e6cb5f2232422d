package provision

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// DevKey makes sure the development account and an admin key of it exist,
// as the operator over the mesh: the key given is kept if auth still
// accepts it, the account given is reused if users still has it; otherwise
// they are made anew. It returns the account and the key.
func DevKey(ctx context.Context, op MeshClient, account, key, keyName string) (string, string, error) {
	ucc, err := op.Dial("users")
	if err != nil {
		return "", "", err
	}
	defer ucc.Close()
	acc, err := op.Dial("auth")
	if err != nil {
		return "", "", err
	}
	defer acc.Close()
	users, auth := usersv1.NewUsersServiceClient(ucc), authv1.NewAuthServiceClient(acc)
	wait := grpc.WaitForReady(true)
	if key != "" {
		if _, err := auth.IssueToken(ctx, &authv1.IssueTokenRequest{Secret: key}, wait); err == nil {
			return account, key, nil
		}
	}
	if account != "" {
		if a, err := users.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: account}, wait); err == nil {
			account = a.Account.Id
		} else {
			account = ""
		}
	}
	if account == "" {
		a, err := users.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "dev", Email: "dev@localhost", Tier: "enterprise", BalanceMicros: 1_000_000_000}, wait)
		if err != nil {
			return "", "", fmt.Errorf("development account: %w", err)
		}
		account = a.Account.Id
	}
	k, err := auth.CreateKey(ctx, &authv1.CreateKeyRequest{AccountId: account, Name: keyName, Role: authv1.Role_ROLE_ADMIN}, wait)
	if err != nil {
		return "", "", fmt.Errorf("development key: %w", err)
	}
	return account, k.Secret, nil
}
