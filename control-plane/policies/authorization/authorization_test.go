package authorization_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/authorization"
)

func TestBuild(t *testing.T) {
	rbac, err := authorization.Build(&v1alpha1.Authorization{
		DefaultAction: v1alpha1.ActionDeny,
		Rules: []v1alpha1.AuthorizationRule{
			{Name: "chat-reserves", Action: v1alpha1.ActionAllow, Principals: []string{"spiffe://bulkhead.local/ns/default/sa/chat"}, Methods: []string{"/bulkhead.users.v1.UsersService/Reserve"}},
			{Name: "no-admin", Action: v1alpha1.ActionDeny, Methods: []string{"/bulkhead.users.v1.UsersService/*"}, Principals: []string{"spiffe://bulkhead.local/ns/sandbox/*"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rbac.DefaultAllow || len(rbac.Allow) != 1 || len(rbac.Deny) != 1 || rbac.Deny[0].Name != "no-admin" {
		t.Fatalf("%+v", rbac)
	}
	_, err = authorization.Build(&v1alpha1.Authorization{
		DefaultAction: "Maybe",
		Rules: []v1alpha1.AuthorizationRule{
			{Name: "a", Action: v1alpha1.ActionAllow, Principals: []string{"spiffe://other.org/ns/x/sa/y", "spiffe://bulkhead.local/*/sa/chat", "chat"}},
			{Name: "a", Action: v1alpha1.ActionAllow, Methods: []string{"Reserve"}},
		},
	})
	for _, want := range []string{
		`defaultAction: "Maybe" is not Allow or Deny`,
		`rules[0].principals[0]: "spiffe://other.org/ns/x/sa/y": trust domain is not the mesh's`,
		`rules[0].principals[1]: "spiffe://bulkhead.local/*/sa/chat": the only wildcard is a trailing /*`,
		`rules[0].principals[2]: "chat" is not a SPIFFE ID`,
		`rules[1].name: "a" is used twice`,
		`rules[1].methods[0]: "Reserve" is not /package.Service/Method`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}
