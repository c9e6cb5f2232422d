package grpcbootstrap_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

func TestCertificateProvider(t *testing.T) {
	o := grpcbootstrap.Options{NodeID: "n", Proxy: workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "chat"}, XDSAddress: "127.0.0.1:1",
		Certificates: &grpcbootstrap.CertificateFiles{Certificate: "/d/cert.pem", PrivateKey: "/d/key.pem", CA: "/d/ca.pem", RefreshInterval: 1500 * time.Millisecond}}
	b, err := grpcbootstrap.JSON(o)
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
	p := doc.CertificateProviders[workload.CertificateProvider]
	if p.PluginName != "file_watcher" || p.Config["refresh_interval"] != "1.5s" || p.Config["certificate_file"] != "/d/cert.pem" {
		t.Fatalf("%s", b)
	}
	o.Certificates.PrivateKey = "/elsewhere/key.pem"
	if _, err := grpcbootstrap.JSON(o); err == nil || !strings.Contains(err.Error(), "same directory") {
		t.Fatalf("key in another directory: %v", err)
	}
	o.Certificates.CA = ""
	if _, err := grpcbootstrap.JSON(o); err == nil {
		t.Fatal("no CA file accepted")
	}
}
