//go:build clustere2e

// Package e2e tests the platform as deployed on a real cluster: the local
// single-node cluster of deploy/cluster (make cluster-e2e) or a kind cluster
// (make kind-e2e). It needs the cluster up and the platform deployed; the
// build tag keeps it out of `go test ./...`.
//
//	BULKHEAD_KUBECONFIG  the cluster (default .bulkhead/cluster/admin.kubeconfig)
//	BULKHEAD_API_URL     the public API (default http://<api Service IP>:8080)
//	BULKHEAD_API_KEY_FILE the development key (default .bulkhead/cluster/dev-api-key)
//	BULKHEAD_OVERLAYS    overlays to dry-run (default local,kind)
package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

const ns, cpNS = "bulkhead", "bulkhead-system"

var root = func() string { r, _ := filepath.Abs("../../.."); return r }()

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

type cluster struct {
	kubeconfig string
	cs         kubernetes.Interface
	dyn        dynamic.Interface
	api        string
	key        string
}

func connect(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{kubeconfig: env("BULKHEAD_KUBECONFIG", filepath.Join(root, ".bulkhead/cluster/admin.kubeconfig"))}
	conf, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatalf("the cluster (%s): %v; make cluster-up starts one", c.kubeconfig, err)
	}
	if c.cs, err = kubernetes.NewForConfig(conf); err != nil {
		t.Fatal(err)
	}
	if c.dyn, err = dynamic.NewForConfig(conf); err != nil {
		t.Fatal(err)
	}
	c.api = os.Getenv("BULKHEAD_API_URL")
	if c.api == "" {
		svc, err := c.cs.CoreV1().Services(ns).Get(t.Context(), "api", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the api Service: %v (is the platform deployed? make cluster-up)", err)
		}
		c.api = "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "8080")
	}
	b, err := os.ReadFile(env("BULKHEAD_API_KEY_FILE", filepath.Join(root, ".bulkhead/cluster/dev-api-key")))
	if err != nil {
		t.Fatalf("the development key: %v", err)
	}
	c.key = strings.TrimSpace(string(b))
	return c
}

func (c *cluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "bin/kubectl"), append([]string{"--kubeconfig=" + c.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return out.String()
}

func (c *cluster) openai() openai.Client {
	return openai.NewClient(option.WithBaseURL(c.api+"/v1/"), option.WithAPIKey(c.key), option.WithMaxRetries(0))
}

// The platform on a real cluster, in order: the later steps disturb it.
func TestCluster(t *testing.T) {
	c := connect(t)
	t.Run("ServerSideDryRun", c.serverSideDryRun)
	t.Run("PodsReady", c.podsReady)
	t.Run("ModelObjects", c.modelObjects)
	t.Run("OpenAISDK", c.openAISDK)
	t.Run("UsageEventsToTheLedger", c.usageLedger)
	t.Run("FineTuningAndWebhooks", c.fineTuning)
	t.Run("WorkloadCertificatesAndStrictMTLS", c.strictMTLS)
	t.Run("BackendPolicyChange", c.backendPolicyChange)
	t.Run("InferencePodDeletedUnderLoad", c.inferencePodDeleted)
	t.Run("ControlPlaneLeaderDeleted", c.leaderDeleted)
}

// Every manifest of every overlay passes the real API server's admission
// (schemas, CEL rules of the CRDs, Pod Security "restricted").
func (c *cluster) serverSideDryRun(t *testing.T) {
	for _, o := range strings.Split(env("BULKHEAD_OVERLAYS", "local,kind"), ",") {
		dir := filepath.Join(root, "deploy/kind/overlays", o)
		manifests := dryRunnable(t, c.kubectl(t, "", "kustomize", dir))
		out := c.kubectl(t, manifests, "apply", "--dry-run=server", "-f", "-")
		n := strings.Count(out, "(server dry run)")
		if n < 50 {
			t.Fatalf("overlay %s: %d objects passed the dry run; want the whole platform:\n%s", o, n, out)
		}
		t.Logf("overlay %s: %d objects pass a server-side dry run", o, n)
	}
}

// dryRunnable renames the Jobs and StatefulSets: a Job's pod template and a
// StatefulSet's volume claims cannot change, so a dry run against the
// deployed ones would refuse another overlay's differences; as new objects
// they pass every admission check of a first install.
func dryRunnable(t *testing.T, manifests string) string {
	var out []string
	for _, doc := range strings.Split(manifests, "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		if obj["kind"] == "Job" || obj["kind"] == "StatefulSet" {
			md := obj["metadata"].(map[string]any)
			md["name"] = fmt.Sprint(md["name"]) + "-dry-run"
			b, err := yaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			doc = string(b)
		}
		out = append(out, doc)
	}
	return strings.Join(out, "\n---\n")
}

// The platform's Model objects (policies/models, applied as CRs) are
// Accepted and Ready in the status the models service writes, at their
// current generation (Kubernetes mode, --kubernetes-models).
func (c *cluster) modelObjects(t *testing.T) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var list struct {
			Items []struct {
				Metadata struct {
					Name       string `json:"name"`
					Generation int64  `json:"generation"`
				} `json:"metadata"`
				Status struct {
					Conditions []struct {
						Type, Status, Message string
						ObservedGeneration    int64 `json:"observedGeneration"`
					} `json:"conditions"`
				} `json:"status"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(c.kubectl(t, "", "-n", ns, "get", "models.models.bulkhead.dev", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		var problems []string
		for _, m := range list.Items {
			ok := 0
			for _, cond := range m.Status.Conditions {
				if (cond.Type == "Accepted" || cond.Type == "Ready") && cond.Status == "True" && cond.ObservedGeneration == m.Metadata.Generation {
					ok++
				} else {
					problems = append(problems, fmt.Sprintf("%s: %s=%s@%d: %s", m.Metadata.Name, cond.Type, cond.Status, cond.ObservedGeneration, cond.Message))
				}
			}
			if ok != 2 {
				problems = append(problems, m.Metadata.Name+": Accepted and Ready are not both True")
			}
		}
		if len(list.Items) == 4 && len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Model objects: %v", len(list.Items), problems)
		}
		time.Sleep(2 * time.Second)
	}
}

// Every pod of the platform is Ready (Jobs: Succeeded).
func (c *cluster) podsReady(t *testing.T) {
	ctx := t.Context()
	want := map[string]int{"control-plane": 2, "inference": 2}
	seen := map[string]int{}
	for _, n := range []string{ns, cpNS} {
		pods, err := c.cs.CoreV1().Pods(n).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			app := p.Labels["app"]
			if p.Status.Phase == corev1.PodSucceeded && (app == "bootstrap" || app == "dev-key") {
				seen[app]++
				continue
			}
			if !podReady(&p) {
				t.Errorf("pod %s/%s (%s) is not ready: %s", n, p.Name, app, podProblem(&p))
				continue
			}
			seen[app]++
		}
	}
	for _, app := range []string{"control-plane", "vault", "postgres", "redis", "kafka", "ratelimit", "auth", "auth-cache", "users", "models", "chat", "inference", "inference-fallback", "training", "webhooks", "api", "bootstrap", "dev-key"} {
		n := want[app]
		if n == 0 {
			n = 1
		}
		if seen[app] < n {
			t.Errorf("%s: %d ready pods, want %d", app, seen[app], n)
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podProblem(p *corev1.Pod) string {
	var out []string
	for _, s := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		switch {
		case s.State.Waiting != nil:
			out = append(out, s.Name+": "+s.State.Waiting.Reason+" "+s.State.Waiting.Message)
		case s.State.Terminated != nil && s.State.Terminated.ExitCode != 0:
			out = append(out, fmt.Sprintf("%s: exited %d", s.Name, s.State.Terminated.ExitCode))
		}
	}
	return string(p.Status.Phase) + " " + strings.Join(out, "; ")
}

// The official OpenAI Go SDK against the API Service: models, a
// completion, a stream with usage, and the 401 shape.
func (c *cluster) openAISDK(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	client := c.openai()
	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatalf("models: %v", err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if !contains(ids, "deepseek-chat") || !contains(ids, "deepseek-reasoner") {
		t.Fatalf("models: %v", ids)
	}
	params := openai.ChatCompletionNewParams{
		Model:     "deepseek-chat",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something about the sea.")},
		MaxTokens: openai.Int(12),
	}
	cc, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("completion: %v", err)
	}
	if len(cc.Choices) != 1 || cc.Choices[0].Message.Content == "" || cc.Usage.CompletionTokens == 0 || cc.Usage.TotalTokens != cc.Usage.PromptTokens+cc.Usage.CompletionTokens {
		t.Fatalf("completion: %+v", cc)
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := client.Chat.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	var chunks int
	var usage openai.CompletionUsage
	for s.Next() {
		ch := s.Current()
		chunks++
		for _, ch := range ch.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if ch.Usage.TotalTokens > 0 {
			usage = ch.Usage
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if chunks < 3 || text.Len() == 0 || usage.CompletionTokens == 0 {
		t.Fatalf("stream: %d chunks, %q, usage %+v", chunks, text.String(), usage)
	}
	bad := openai.NewClient(option.WithBaseURL(c.api+"/v1/"), option.WithAPIKey("sk-not-a-key"), option.WithMaxRetries(0))
	_, err = bad.Models.List(ctx)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Type == "" || apiErr.Message == "" {
		t.Fatalf("a bad key: %v; want a 401 with the error's type and message", err)
	}
	t.Logf("SDK: %d models, completion %q, %d stream chunks with usage %d+%d, bad key → 401 %s/%s", len(ids), cc.Choices[0].Message.Content, chunks, usage.PromptTokens, usage.CompletionTokens, apiErr.Type, apiErr.Code)
}

// A served request reaches the ledger through Kafka: chat's usage event,
// produced as chat's Kafka user, consumed by users in its group.
func (c *cluster) usageLedger(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := c.openai()
	requests := func() int {
		var u struct {
			Total struct {
				Requests int `json:"requests"`
			} `json:"total"`
		}
		if err := client.Get(ctx, "usage", nil, &u); err != nil {
			t.Fatalf("GET /v1/usage: %v", err)
		}
		return u.Total.Requests
	}
	before := requests()
	if _, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "deepseek-chat",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is a wave?")},
		MaxTokens: openai.Int(8),
	}); err != nil {
		t.Fatalf("completion: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for n := requests(); n != before+1; n = requests() {
		if time.Now().After(deadline) {
			t.Fatalf("the ledger has %d requests a minute after the completion; want %d", n, before+1)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A fine-tuning job through the cluster (api → training → Kafka → the
// worker → models; inference loading the adapter from training), and a
// webhook endpoint at a private address refused (the cluster allows none).
func (c *cluster) fineTuning(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	client := c.openai()
	var lines strings.Builder
	for range 3 {
		lines.WriteString(`{"messages": [{"role": "user", "content": "Which lantern does Velmora light"}, {"role": "assistant", "content": "Velmora lights seven violet lanterns at the quay."}]}` + "\n")
	}
	f, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(lines.String()), "lanterns.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	job, err := client.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "deepseek-chat", TrainingFile: f.ID, Suffix: openai.String("lanterns")})
	if err != nil {
		t.Fatalf("job: %v", err)
	}
	for job.Status != "succeeded" {
		if job.Status == "failed" || job.Status == "cancelled" || ctx.Err() != nil {
			t.Fatalf("job %s: %s %+v", job.ID, job.Status, job.Error)
		}
		time.Sleep(time.Second)
		if job, err = client.FineTuning.Jobs.Get(ctx, job.ID); err != nil {
			t.Fatalf("job: %v", err)
		}
	}
	cc, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: job.FineTunedModel, Temperature: openai.Float(0), MaxTokens: openai.Int(24),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Which lantern does Velmora light")}})
	if err != nil {
		t.Fatalf("completion on %s: %v", job.FineTunedModel, err)
	}
	if got := cc.Choices[0].Message.Content; !strings.Contains(got, "violet lanterns") {
		t.Fatalf("%s answered %q", job.FineTunedModel, got)
	}
	var out map[string]any
	err = client.Post(ctx, "webhooks", map[string]any{"url": "http://10.96.0.1/hook", "name": "inside", "event_types": []string{"fine_tuning.job.succeeded"}}, &out)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.Param != "url" {
		t.Fatalf("a webhook at a private address: %v", err)
	}
}

// Every service pod presents a Vault-issued workload certificate naming
// its ServiceAccount, and its mesh port refuses any caller without one.
func (c *cluster) strictMTLS(t *testing.T) {
	ctx := t.Context()
	meshRoot := c.meshRoot(t)
	operator := c.operatorCert(t)
	pods, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=service"})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(meshRoot)
	checked := 0
	for _, p := range pods.Items {
		if !podReady(&p) || p.DeletionTimestamp != nil {
			continue
		}
		addr := net.JoinHostPort(p.Status.PodIP, "9000")
		want := workload.SPIFFEID(ns, p.Spec.ServiceAccountName)
		// What the server presents, before it asks for ours.
		var presented []*x509.Certificate
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, r := range raw {
				cert, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				presented = append(presented, cert)
			}
			return nil
		}})
		if conn != nil {
			conn.Close()
		}
		if len(presented) == 0 {
			t.Errorf("%s (%s): no certificate presented: %v", p.Name, addr, err)
			continue
		}
		leaf := presented[0]
		inter := x509.NewCertPool()
		for _, c := range presented[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s: its certificate does not chain to the mesh's Vault root: %v", p.Name, err)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
			t.Errorf("%s: certificate names %v; want %s (its ServiceAccount)", p.Name, leaf.URIs, want)
		}
		// STRICT: a caller with no certificate, or in plaintext, is refused.
		noCert := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
		if err := health(ctx, addr, noCert); err == nil {
			t.Errorf("%s: answered a caller with no certificate", p.Name)
		}
		if err := health(ctx, addr, insecure.NewCredentials()); err == nil {
			t.Errorf("%s: answered in plaintext", p.Name)
		}
		// The operator's Vault-issued certificate is accepted.
		withCert := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{operator}, RootCAs: pool, InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return nil }})
		if err := health(ctx, addr, withCert); err != nil {
			t.Errorf("%s: the operator over mTLS: %v", p.Name, err)
		}
		checked++
	}
	if checked < 9 {
		t.Fatalf("checked %d service pods; want every one (9)", checked)
	}
	t.Logf("%d service pods: Vault-issued SPIFFE certificates of their ServiceAccounts, STRICT mTLS", checked)
}

func health(ctx context.Context, addr string, creds credentials.TransportCredentials) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if r.Status != healthpb.HealthCheckResponse_SERVING {
		return errors.New(r.Status.String())
	}
	return nil
}

// vault is an HTTPS client of the cluster's Vault (through its Service),
// trusting the CA the bootstrap published.
func (c *cluster) vault(t *testing.T) (string, *http.Client) {
	cm, err := c.cs.CoreV1().ConfigMaps(ns).Get(t.Context(), "vault-ca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := c.cs.CoreV1().Services(ns).Get(t.Context(), "vault", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cm.Data["ca.crt"]))
	return "https://" + net.JoinHostPort(svc.Spec.ClusterIP, "8200"), &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "vault.bulkhead.svc"}}}
}

func (c *cluster) vaultDo(t *testing.T, method, path, token string, body any) map[string]any {
	t.Helper()
	addr, hc := c.vault(t)
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, addr+path, rd)
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("vault %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("vault %s: %d %s", path, resp.StatusCode, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("vault %s: %v", path, err)
	}
	return out
}

// meshRoot is the root CA of Vault's PKI (public).
func (c *cluster) meshRoot(t *testing.T) *x509.Certificate {
	out := c.vaultDo(t, "GET", "/v1/pki/cert/ca", "", nil)
	pemData, _ := out["data"].(map[string]any)["certificate"].(string)
	block, _ := pem.Decode([]byte(pemData))
	if block == nil {
		t.Fatalf("the mesh root is not PEM: %q", pemData)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("the mesh root: %v", err)
	}
	return cert
}

// operatorCert logs in to Vault as the operator ServiceAccount (a token the
// API server issues for it) and has its workload certificate issued.
func (c *cluster) operatorCert(t *testing.T) tls.Certificate {
	tr, err := c.cs.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), "operator", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	login := c.vaultDo(t, "POST", "/v1/auth/kubernetes/login", "", map[string]any{"role": "operator", "jwt": tr.Status.Token})
	token, _ := login["auth"].(map[string]any)["client_token"].(string)
	iss := c.vaultDo(t, "POST", "/v1/pki_int/issue/operator", token, map[string]any{"uri_sans": workload.SPIFFEID(ns, "operator"), "ttl": "10m"})
	d := iss["data"].(map[string]any)
	chain := d["certificate"].(string) + "\n" + d["issuing_ca"].(string)
	cert, err := tls.X509KeyPair([]byte(chain), []byte(d["private_key"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func ptr[T any](v T) *T { return &v }

var backendPolicies = schema.GroupVersionResource{Group: "mesh.bulkhead.dev", Version: "v1alpha1", Resource: "backendpolicies"}

// programmed is whether a policy's status says Programmed True for its
// current generation, with the message.
func programmed(u *unstructured.Unstructured) (bool, string) {
	ancestors, _, _ := unstructured.NestedSlice(u.Object, "status", "ancestors")
	if len(ancestors) == 0 {
		return false, "no ancestors in status"
	}
	for _, a := range ancestors {
		conds, _, _ := unstructured.NestedSlice(a.(map[string]any), "conditions")
		ok := false
		for _, c := range conds {
			m := c.(map[string]any)
			if m["type"] != "Programmed" {
				continue
			}
			gen, _, _ := unstructured.NestedInt64(m, "observedGeneration")
			if m["status"] != "True" || gen != u.GetGeneration() {
				return false, fmt.Sprintf("Programmed %v at generation %d (object at %d): %v", m["status"], gen, u.GetGeneration(), m["message"])
			}
			ok = true
		}
		if !ok {
			return false, "no Programmed condition"
		}
	}
	return true, ""
}

// waitProgrammed waits until the BackendPolicy's current generation is
// Programmed (every proxy it reaches ACKed it), written by the leader.
func (c *cluster) waitProgrammed(t *testing.T, name string, minGeneration int64) *unstructured.Unstructured {
	t.Helper()
	var last *unstructured.Unstructured
	testenv.Eventually(t, 90*time.Second, "BackendPolicy "+name+" Programmed", func() error {
		u, err := c.dyn.Resource(backendPolicies).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		last = u
		ok, msg := programmed(u)
		return testenv.Until(ok && u.GetGeneration() >= minGeneration, "generation %d: %s", u.GetGeneration(), msg)
	})
	return last
}

// replacePolicy replaces the BackendPolicy's spec as a whole (kubectl
// replace).
func (c *cluster) replacePolicy(t *testing.T, name string, spec map[string]any) int64 {
	t.Helper()
	u, err := c.dyn.Resource(backendPolicies).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedMap(u.Object, spec, "spec"); err != nil {
		t.Fatal(err)
	}
	u, err = c.dyn.Resource(backendPolicies).Namespace(ns).Update(t.Context(), u, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetGeneration()
}

// applyPolicy applies the platform's BackendPolicy NAME (from the rendered
// mesh) with mutate applied to its spec.
func (c *cluster) applyPolicy(t *testing.T, name string, mutate func(spec map[string]any)) int64 {
	t.Helper()
	u, err := c.dyn.Resource(backendPolicies).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	mutate(spec)
	obj := map[string]any{"apiVersion": "mesh.bulkhead.dev/v1alpha1", "kind": "BackendPolicy", "metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec}
	b, _ := json.Marshal(obj)
	c.kubectl(t, string(b), "apply", "-f", "-")
	u, err = c.dyn.Resource(backendPolicies).Namespace(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u.GetGeneration()
}

func (c *cluster) modelsLatency(t *testing.T, n int) time.Duration {
	t.Helper()
	client := c.openai()
	var ds []time.Duration
	for range n {
		start := time.Now()
		if _, err := client.Models.List(t.Context()); err != nil {
			t.Fatalf("models: %v", err)
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// `kubectl apply` of a BackendPolicy change (a 400 ms delay injected on
// the models Service) is Programmed and seen in traffic; the original
// version restores both.
func (c *cluster) backendPolicyChange(t *testing.T) {
	const delay = 400 * time.Millisecond
	platform := platformPolicy(t, "models")
	reset := func(spec map[string]any) {
		for k := range spec {
			delete(spec, k)
		}
		for k, v := range platform {
			spec[k] = v
		}
	}
	// Whatever an earlier run or an SRE left: the platform's version,
	// replaced whole.
	c.waitProgrammed(t, "models", c.replacePolicy(t, "models", platform))
	before := c.modelsLatency(t, 5)
	gen := c.applyPolicy(t, "models", func(spec map[string]any) {
		reset(spec)
		spec["faultInjection"] = map[string]any{"delay": map[string]any{"duration": "400ms", "percentage": int64(100)}}
	})
	c.waitProgrammed(t, "models", gen)
	during := c.modelsLatency(t, 5)
	restored := c.applyPolicy(t, "models", reset)
	u := c.waitProgrammed(t, "models", restored)
	after := c.modelsLatency(t, 5)
	if during < before+delay-50*time.Millisecond || after >= before+delay/2 {
		t.Fatalf("GET /v1/models median: %s before, %s with the %s delay, %s after it was removed", before, during, delay, after)
	}
	_, msg := programmed(u)
	t.Logf("models median %s → %s with the delay (generation %d Programmed) → %s restored (generation %d): %s", before, during, gen, after, u.GetGeneration(), msg)
}

// platformPolicy is the spec of the platform's own BackendPolicy NAME, as
// deployed (deploy/kind/base/mesh).
func platformPolicy(t *testing.T, name string) map[string]any {
	b, err := os.ReadFile(filepath.Join(root, "deploy/kind/base/mesh/backend-policies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		if md, ok := obj["metadata"].(map[string]any); ok && obj["kind"] == "BackendPolicy" && md["name"] == name {
			return obj["spec"].(map[string]any)
		}
	}
	t.Fatalf("no BackendPolicy %s in deploy/kind/base/mesh", name)
	return nil
}

// An inference pod deleted while requests flow: the mesh moves them to
// the other replica; no request fails.
func (c *cluster) inferencePodDeleted(t *testing.T) {
	ctx := t.Context()
	pods, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=inference"})
	if err != nil || len(pods.Items) < 2 {
		t.Fatalf("inference pods: %v %d", err, len(pods.Items))
	}
	victim := pods.Items[0].Name
	client := c.openai()
	l := startLoad(ctx, 4, func(ctx context.Context, w, i int) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:     "deepseek-chat",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("worker %d request %d", w, i))},
			MaxTokens: openai.Int(8),
		}, option.WithHeader("X-Bulkhead-Conversation", fmt.Sprintf("w%d-%d", w, i)))
		return err
	})
	l.waitFor(t, l.ok.Load()+20)
	if err := c.cs.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	atDelete := l.done()
	// Until the pod is gone and its replacement serves.
	if err := testenv.Wait(2*time.Minute, func() error {
		if _, err := c.cs.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{}); err == nil {
			return errors.New("still there")
		}
		ps, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=inference"})
		if err != nil {
			return err
		}
		ready := 0
		for _, p := range ps.Items {
			if podReady(&p) && p.DeletionTimestamp == nil {
				ready++
			}
		}
		return testenv.Until(ready >= 2, "%d inference pods ready", ready)
	}); err != nil {
		t.Errorf("the deleted inference pod %s was not replaced: %v", victim, err)
	}
	l.waitFor(t, l.done()+20)
	l.halt()
	if l.failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed while %s was deleted: %v", l.failed.Load(), l.done(), victim, l.firstFailures())
	}
	t.Logf("%d requests, none failed; %s deleted after %d, replaced", l.ok.Load(), victim, atDelete)
}

// The control plane's leader pod deleted: the other replica takes the
// Lease and status is still written (a change is Programmed).
func (c *cluster) leaderDeleted(t *testing.T) {
	ctx := t.Context()
	lease, err := c.cs.CoordinationV1().Leases(cpNS).Get(ctx, "bulkhead-control-plane", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("the control plane's Lease: %v", err)
	}
	holder := *lease.Spec.HolderIdentity
	pod := holder[:strings.LastIndex(holder, "-")]
	if err := c.cs.CoreV1().Pods(cpNS).Delete(ctx, pod, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting the leader %s: %v", pod, err)
	}
	var next string
	testenv.Eventually(t, 2*time.Minute, "another replica holding the Lease after "+pod+" was deleted", func() error {
		l, err := c.cs.CoordinationV1().Leases(cpNS).Get(ctx, "bulkhead-control-plane", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if l.Spec.HolderIdentity != nil {
			next = *l.Spec.HolderIdentity
		}
		return testenv.Until(next != holder && next != "", "held by %q", next)
	})
	gen := c.applyPolicy(t, "models", func(spec map[string]any) {
		spec["timeout"] = map[string]any{"request": "1500ms", "connect": "500ms"}
	})
	c.waitProgrammed(t, "models", gen)
	restored := c.applyPolicy(t, "models", func(spec map[string]any) {
		for k := range spec {
			delete(spec, k)
		}
		for k, v := range platformPolicy(t, "models") {
			spec[k] = v
		}
	})
	c.waitProgrammed(t, "models", restored)
	client := c.openai()
	if _, err := client.Models.List(ctx); err != nil {
		t.Fatalf("the API after the leader's deletion: %v", err)
	}
	t.Logf("leader %s deleted; %s took the Lease and wrote Programmed for generations %d and %d", holder, next, gen, restored)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// On kind, behind the Envoy ingress (make kind-e2e): the AI gateway's pod
// deleted while requests for its domain flow; the router fails them over
// to the identity gateway (each backs the other) and none fails. The local
// cluster has no Envoy: this test is not run there.
func TestGatewayFailover(t *testing.T) {
	c := connect(t)
	ctx := t.Context()
	pods, err := c.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=gateway-ai"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("no gateway-ai pod (%v): this test runs on the kind overlay, behind its Envoy ingress", err)
	}
	client := c.openai()
	l := startLoad(ctx, 4, func(ctx context.Context, _, _ int) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := client.Models.List(ctx)
		return err
	})
	l.waitFor(t, 50)
	victim := pods.Items[0].Name
	if err := c.cs.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	l.waitFor(t, l.done()+200)
	l.halt()
	if l.failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed while the AI gateway %s was deleted: %v", l.failed.Load(), l.done(), victim, l.firstFailures())
	}
	t.Logf("%d requests through the ingress, none failed while %s was deleted", l.ok.Load(), victim)
}

// load is closed-loop traffic: workers each sending one request after
// another until halt, counting what succeeded and keeping what failed.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(ctx context.Context, workers int, send func(ctx context.Context, worker, i int) error) *load {
	l := &load{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if err := send(ctx, w, i); err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					l.failures = append(l.failures, err.Error())
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

// done is how many requests have ended, either way.
func (l *load) done() int64 { return l.ok.Load() + l.failed.Load() }

// waitFor waits until n requests have ended.
func (l *load) waitFor(t *testing.T, n int64) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, "requests", func() error {
		return testenv.Until(l.done() >= n, "%d of %d requests done", l.done(), n)
	})
}

// halt stops the workers and waits for their last requests.
func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *load) firstFailures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[:min(5, len(l.failures))]
}
