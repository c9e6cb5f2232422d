package bootstrap_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/bootstrap"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
)

func TestCertificateProvider(t *testing.T) {
	o := bootstrap.GRPCOptions{NodeID: "n", Proxy: ir.ProxyID{Role: ir.RoleGRPC, Namespace: "default", Name: "chat"}, XDSAddress: "127.0.0.1:1",
		Certificates: &bootstrap.CertificateFiles{Certificate: "/d/cert.pem", PrivateKey: "/d/key.pem", CA: "/d/ca.pem", RefreshInterval: 1500 * time.Millisecond}}
	b, err := bootstrap.GRPC(o)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		CertificateProviders map[string]struct {
			PluginName string            `json:"plugin_name"`
			Config     map[string]string `json:"config"`
		} `json:"certificate_providers"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	p := doc.CertificateProviders[ir.CertificateProvider]
	if p.PluginName != "file_watcher" || p.Config["refresh_interval"] != "1.5s" || p.Config["certificate_file"] != "/d/cert.pem" {
		t.Fatalf("%s", b)
	}
	o.Certificates.PrivateKey = "/elsewhere/key.pem"
	if _, err := bootstrap.GRPC(o); err == nil || !strings.Contains(err.Error(), "same directory") {
		t.Fatalf("key in another directory: %v", err)
	}
	o.Certificates.CA = ""
	if _, err := bootstrap.GRPC(o); err == nil {
		t.Fatal("no CA file accepted")
	}
}
