package e2e_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/users"
)

// issueAs gets a workload certificate of an identity from Vault's PKI (as
// an administrator would), into a new directory.
func issueAs(t testing.TB, s *stack.Stack, account string) pki.CertFiles {
	return issueWith(t, s, account, account)
}

// issueWith issues a certificate for account through a given PKI role.
func issueWith(t testing.TB, s *stack.Stack, role, account string) pki.CertFiles {
	t.Helper()
	v, err := s.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	iss, err := pki.IssueCert(t.Context(), v, role, workload.SPIFFEID("default", account), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := pki.CertFilesIn(filepath.Join(t.TempDir(), account))
	if err := iss.Write(f); err != nil {
		t.Fatal(err)
	}
	return f
}

// The platform's own SecurityPolicies (policies/mesh): every Service is
// STRICT, and a caller may make exactly the calls of the request flow.
func TestPlatformPoliciesAllowExactlyTheFlow(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()
	asAPI, err := provision.MeshClient{XDSAddress: p.ControlPlane.XDSAddr(), NodeID: "api-test", Name: "api-test", Account: "api", Certs: issueAs(t, p.Stack, "api"), XDSTLS: true}.Dial("users")
	if err != nil {
		t.Fatal(err)
	}
	defer asAPI.Close()
	users := usersv1.NewUsersServiceClient(asAPI)
	if _, err := users.GetUsage(ctx, &usersv1.GetUsageRequest{AccountId: p.Account}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("api reading usage (its call in the flow): %v", err)
	}
	if _, err := users.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: p.Account}); err != nil {
		t.Fatalf("api reading the balance (GET /user/balance): %v", err)
	}
	for name, call := range map[string]func() error{
		"Reserve (chat's call)": func() error {
			_, err := users.Reserve(ctx, &usersv1.ReserveRequest{AccountId: p.Account, RequestId: "x", MaxTokens: 1})
			return err
		},
		"UpdateAccount (the operator's)": func() error {
			_, err := users.UpdateAccount(ctx, &usersv1.UpdateAccountRequest{AccountId: p.Account, BalanceDeltaMicros: 1})
			return err
		},
		"CreateAccount (the operator's)": func() error {
			_, err := users.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "x"})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("api calling users %s: %v; want PERMISSION_DENIED", name, err)
		}
	}

	// Plaintext to a service's own address: refused (STRICT).
	plain, err := grpc.NewClient(p.Services["users-1"].Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(plain).Check(short, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("plaintext health check: %v; want refused", err)
	}
}

// Workload certificates are renewed at two thirds of their life under
// steady load without a failed call: through the mesh (the services' own
// clients and servers) and on fresh mTLS connections, each a new handshake
// against the server's current certificate.
func TestCertificateRotationUnderLoad(t *testing.T) {
	s := stack.New(t)
	svc := s.StartService("users", users.Setup(), stack.Options{Instance: "users-1", Config: func(c *platform.Config) {
		// Renewed every 4 s, 2 s before expiry: room for the Vault call and
		// grpc-go's file watcher (1 s refresh) on a loaded machine.
		c.CertTTL = 6 * time.Second
	}})
	mesh := usersv1.NewUsersServiceClient(s.Dial("users"))
	tlsConf, err := provision.OperatorTLS(s.Operator)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := mesh.GetUsage(ctx, &usersv1.GetUsageRequest{AccountId: "a"}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	serials := map[string]bool{}
	l := underLoad(4, 0, func(w int) error {
		if w%2 == 0 {
			_, err := mesh.GetUsage(ctx, &usersv1.GetUsageRequest{AccountId: "a"})
			return err
		}
		return freshHandshake(ctx, svc.Addr().String(), tlsConf, &mu, serials)
	}, func() {
		// Two renewals after the first certificate, and fresh handshakes
		// that saw the rotation.
		testenv.Eventually(t, 2*time.Minute, "two renewals seen by fresh handshakes", func() error {
			mu.Lock()
			seen := len(serials)
			mu.Unlock()
			return testenv.Until(svc.CertificatesIssued() >= 3 && seen >= 2, "%d certificates issued, %d seen", svc.CertificatesIssued(), seen)
		})
	})
	if l.failures != 0 {
		t.Fatalf("%d of %d calls failed during rotation (first: %v)", l.failures, l.calls, l.first)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d calls, 0 failed, %d certificates issued, %d seen by fresh handshakes", l.calls, svc.CertificatesIssued(), len(serials))
}

// freshHandshake opens a new mTLS connection as the operator, asks for
// health, and records the server certificate it saw.
func freshHandshake(ctx context.Context, addr string, conf *tls.Config, mu *sync.Mutex, serials map[string]bool) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		return err
	}
	defer cc.Close()
	var pr peer.Peer
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&pr)); err != nil {
		return err
	}
	if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		mu.Lock()
		serials[ti.State.PeerCertificates[0].SerialNumber.String()] = true
		mu.Unlock()
	}
	return nil
}

// Database credentials come from Vault's database secrets engine and are
// replaced before they expire, under steady load, without a failed query.
func TestDatabaseCredentialRotationUnderLoad(t *testing.T) {
	s := stack.New(t, func(o *provision.Options) { o.DatabaseCredentialTTL = 6 * time.Second })
	svc := s.StartService("users", users.Setup(), stack.Options{Instance: "users-1"})
	c := usersv1.NewUsersServiceClient(s.Dial("users"))
	ctx := t.Context()
	acct, err := c.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "rotating"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	// GetAccount reads the database on every call.
	l := underLoad(4, 0, func(int) error {
		_, err := c.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: acct.Account.Id})
		return err
	}, func() {
		testenv.Eventually(t, 2*time.Minute, "two database credential rotations", func() error {
			return testenv.Until(svc.DatabaseCredentialsIssued() >= 3, "%d database users so far", svc.DatabaseCredentialsIssued())
		})
	})
	if l.failures != 0 {
		t.Fatalf("%d of %d queries failed during rotation (first: %v)", l.failures, l.calls, l.first)
	}
	t.Logf("%d queries, 0 failed, %d database users", l.calls, svc.DatabaseCredentialsIssued())
}

// Vault unreachable: the service keeps serving on its current certificate
// and database user, counts (and logs) the failed renewals, and renews by
// itself once Vault is back: an outage of about a minute, across the
// renewal point, with 90 s lifetimes (renewal due at 60 s) standing for the
// real hour.
func TestVaultOutage(t *testing.T) {
	s := stack.New(t, func(o *provision.Options) { o.DatabaseCredentialTTL = 90 * time.Second })
	proxy := testenv.StartTCPProxy(t, strings.TrimPrefix(s.Vault.Addr, "http://"))
	svc := s.StartService("users", users.Setup(), stack.Options{Instance: "users-1", Config: func(c *platform.Config) {
		c.CertTTL = 90 * time.Second
		c.Vault.Address = "http://" + proxy.Addr()
	}})
	c := usersv1.NewUsersServiceClient(s.Dial("users"))
	tlsConf, err := provision.OperatorTLS(s.Operator)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	acct, err := c.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "outage"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	serials := map[string]bool{}
	l := underLoad(2, 5*time.Millisecond, func(w int) error {
		if w == 0 {
			_, err := c.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: acct.Account.Id})
			return err
		}
		return freshHandshake(ctx, svc.Addr().String(), tlsConf, &mu, serials)
	}, func() {
		proxy.SetDown(true)
		certsBefore, credsBefore := svc.CertificatesIssued(), svc.DatabaseCredentialsIssued()
		// Vault stays away across the renewal point (60 s after start) until
		// both renewals have failed twice (the first attempt and a retry),
		// while the load goes on.
		testenv.Eventually(t, 3*time.Minute, "both renewals failing while Vault is away", func() error {
			return testenv.Until(svc.CertificateRenewalFailures() >= 2 && svc.DatabaseRenewalFailures() >= 2,
				"%d certificate and %d database renewals failed so far", svc.CertificateRenewalFailures(), svc.DatabaseRenewalFailures())
		})
		proxy.SetDown(false)
		if svc.CertificatesIssued() != certsBefore || svc.DatabaseCredentialsIssued() != credsBefore {
			t.Error("renewed while Vault was unreachable?")
		}
		testenv.Eventually(t, time.Minute, "renewal once Vault is back", func() error {
			return testenv.Until(svc.CertificatesIssued() > certsBefore && svc.DatabaseCredentialsIssued() > credsBefore,
				"certificates %d, database users %d", svc.CertificatesIssued(), svc.DatabaseCredentialsIssued())
		})
		// And the load goes on over the renewed certificate.
		testenv.Eventually(t, time.Minute, "a fresh handshake with the renewed certificate", func() error {
			mu.Lock()
			defer mu.Unlock()
			return testenv.Until(len(serials) >= 2, "%d server certificates seen", len(serials))
		})
	})
	if l.failures != 0 {
		t.Fatalf("%d of %d calls failed around the outage (first: %v)", l.failures, l.calls, l.first)
	}
	t.Logf("%d calls, 0 failed; %d renewals failed during the outage; certificates %d, database users %d", l.calls, svc.RenewalFailures(), svc.CertificatesIssued(), svc.DatabaseCredentialsIssued())
}

// load is what underLoad saw.
type load struct {
	calls, failures int64
	first           any
}

// underLoad runs call on workers goroutines (each pausing between calls)
// while scenario runs, and counts the calls and the failures.
func underLoad(workers int, pause time.Duration, call func(worker int) error, scenario func()) load {
	var calls, failures atomic.Int64
	var first atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(pause):
				}
				err := call(w)
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	// The load stops also when the scenario fails the test (Goexit).
	var once sync.Once
	end := func() { once.Do(func() { close(stop); wg.Wait() }) }
	defer end()
	scenario()
	end()
	return load{calls: calls.Load(), failures: failures.Load(), first: first.Load()}
}
