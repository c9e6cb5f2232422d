package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/events"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/users"
)

// The usage events off the request path, under what breaks in production:
// the broker stopped for 30 s under load (chat keeps serving; its outbox
// holds the events, and delivers them in order when the broker is back),
// then a users replica killed while it consumes the backlog. Every served request is
// in the ledger once, each account's in the order chat served them, and
// the balances in PostgreSQL are what the ledger says.
func TestUsageEvents(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	// A second consumer in the group: the partitions are shared, and one
	// of the two is killed below.
	p.Services["users-2"] = p.StartService("users", users.Setup(), stack.Options{Instance: "users-2"})
	ctx := t.Context()
	url := p.APIURL + "/v1/chat/completions"
	body := chatBody(map[string]any{"max_tokens": 5})

	type client struct{ account, key string }
	var clients []client
	for i := range 4 {
		a, k := newKey(t, p, &usersv1.CreateAccountRequest{Name: fmt.Sprint("load-", i), Tier: "standard", BalanceMicros: 100_000_000,
			Limits: &usersv1.Limits{MaxConcurrentRequests: 100, TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40}})
		clients = append(clients, client{a, k})
	}
	served := make([]atomic.Int64, len(clients))
	var idsMu sync.Mutex
	ids := make([][]string, len(clients))
	call := func(i int) error {
		r := do(t, ctx, "POST", url, clients[i].key, body)
		// 503 overloaded asks to retry shortly (a loaded machine); what is
		// asserted is that nothing is lost.
		for attempt := 1; r.status == 503 && attempt < 5; attempt++ {
			r = do(t, ctx, "POST", url, clients[i].key, body)
		}
		if r.status != 200 {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		served[i].Add(1)
		id, _ := r.json(t)["id"].(string)
		idsMu.Lock()
		ids[i] = append(ids[i], strings.TrimPrefix(id, "chatcmpl-"))
		idsMu.Unlock()
		return nil
	}
	total := func() (n int64) {
		for i := range served {
			n += served[i].Load()
		}
		return n
	}

	l := underLoad(len(clients), 50*time.Millisecond, call, func() {
		time.Sleep(2 * time.Second)
		if err := p.Kafka.Stop(); err != nil {
			t.Fatal(err)
		}
		before := total()
		time.Sleep(30 * time.Second)
		during := total() - before
		pending := metric(t, p, "chat-1", "bulkhead_outbox_pending", "")
		if during == 0 || pending == 0 {
			t.Fatalf("with the broker stopped for 30 s: %d requests served, %d events waiting in the outbox; want both > 0",
				during, pending)
		}
		t.Logf("broker stopped 30 s: %d requests served meanwhile, %d events waiting in chat's outbox", during, pending)
		if err := p.Kafka.Start(); err != nil {
			t.Fatal(err)
		}

		// A users replica killed while it consumes the backlog: the first one
		// seen recording events again.
		recorded := func(inst string) int {
			return metric(t, p, inst, "bulkhead_users_usage_events_total", `result="recorded"`)
		}
		base := map[string]int{"users-1": recorded("users-1"), "users-2": recorded("users-2")}
		var victim string
		testenv.Eventually(t, 60*time.Second, "a users replica consuming after the broker's return", func() error {
			for _, inst := range []string{"users-2", "users-1"} {
				if recorded(inst) > base[inst] {
					victim = inst
					return nil
				}
			}
			return fmt.Errorf("neither replica recorded an event yet")
		})
		p.Services[victim].Kill()
		t.Logf("%s killed while consuming", victim)
		time.Sleep(3 * time.Second)
	})
	if l.failures != 0 {
		t.Fatalf("%d requests failed (first: %v); chat should serve through the broker's absence", l.failures, l.first)
	}
	testenv.Eventually(t, 2*time.Minute, "chat's outbox delivered", func() error {
		n := metric(t, p, "chat-1", "bulkhead_outbox_pending", "")
		return testenv.Until(n == 0, "%d events waiting", n)
	})
	p.WaitConsumed(events.Usage.Group("users"), 2*time.Minute)

	db := ledgerDB(t, p)
	uc := usersv1.NewUsersServiceClient(p.Dial("users"))
	for i, c := range clients {
		n, cost, balance := ledgerOf(t, db, c.account)
		if n != served[i].Load() {
			rows, _ := db.Query(ctx, `SELECT request_id FROM usage_ledger WHERE account_id = $1`, c.account)
			got, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			var missing []string
			for _, id := range ids[i] {
				if !slices.Contains(got, id) {
					missing = append(missing, id)
				}
			}
			t.Errorf("account %d: %d requests in the ledger; %d were served; missing %v", i, n, served[i].Load(), missing)
		}
		a, err := uc.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: c.account}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatal(err)
		}
		if balance != 100_000_000-cost || a.Account.BalanceMicros != balance {
			t.Errorf("account %d: balance %d in PostgreSQL, %d settled; the ledger's %d micros make %d", i, balance, a.Account.BalanceMicros, cost, 100_000_000-cost)
		}
		// In order: the ledger took the account's events in the order chat
		// numbered them.
		rows, err := db.Query(ctx, `SELECT sequence FROM usage_ledger WHERE account_id = $1 ORDER BY position`, c.account)
		if err != nil {
			t.Fatal(err)
		}
		seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatal(err)
		}
		for j := 1; j < len(seqs); j++ {
			if seqs[j] <= seqs[j-1] {
				t.Fatalf("account %d: the ledger has event %d after %d", i, seqs[j], seqs[j-1])
			}
		}
	}
	t.Logf("%d requests served and in the ledger once each", total())
}

// deliverTwice makes the broker deliver every usage event so far a second
// time, both ways it happens: the events produced again (a producer that
// resends what it was not sure of), then the users' group set back to the
// start, so that the broker redelivers what was consumed.
func deliverTwice(t *testing.T, p *stack.Platform, consumers ...string) {
	t.Helper()
	ctx := t.Context()
	adm := p.KafkaAdmin()
	ends, err := adm.ListEndOffsets(ctx, events.Usage.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	rd := p.KafkaAs("users", kgo.ConsumeTopics(events.Usage.Name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var recs []*kgo.Record
	for int64(len(recs)) < want {
		fs := rd.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, fs.Records()...)
	}
	chat := p.KafkaAs("chat", kgo.DefaultProduceTopic(events.Usage.Name))
	for _, r := range recs {
		if err := chat.ProduceSync(ctx, &kgo.Record{Key: r.Key, Value: r.Value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The group is set back while no member holds it.
	group := events.Usage.Group("users")
	for _, c := range consumers {
		p.Services[c].Stop()
	}
	commits, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	rewind := kadm.Offsets{}
	commits.Each(func(o kadm.OffsetResponse) { rewind.AddOffset(o.Topic, o.Partition, 0, -1) })
	if len(rewind) == 0 {
		t.Fatal("the users' group has committed nothing")
	}
	if r, err := adm.CommitOffsets(ctx, group, rewind); err != nil || r.Error() != nil {
		t.Fatalf("set the group back: %v %v", err, r.Error())
	}
	for _, c := range consumers {
		p.Services[c+"-again"] = p.StartService("users", users.Setup(), stack.Options{Instance: c + "-again"})
	}
	t.Logf("%d usage events produced again, and the group set back to the start", len(recs))
}

// ledgerDB is a connection to the users' database.
func ledgerDB(t *testing.T, p *stack.Platform) *pgx.Conn {
	t.Helper()
	db, err := pgx.Connect(t.Context(), p.Postgres.DatabaseDSN("users"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return db
}

// ledgerOf is an account's requests and cost in the ledger, and its
// balance in PostgreSQL.
func ledgerOf(t *testing.T, db *pgx.Conn, account string) (requests, cost, balance int64) {
	t.Helper()
	err := db.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM usage_ledger WHERE account_id = $1),
		(SELECT COALESCE(sum(cost_micros), 0) FROM usage_ledger WHERE account_id = $1),
		(SELECT balance_micros FROM accounts WHERE id = $1)`, account).Scan(&requests, &cost, &balance)
	if err != nil {
		t.Fatal(err)
	}
	return requests, cost, balance
}
