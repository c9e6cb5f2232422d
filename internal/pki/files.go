package pki

import (
	"os"
	"path/filepath"
	"strings"
)

// CertFiles are a workload certificate's PEM files, in one directory.
type CertFiles struct {
	Dir, Certificate, PrivateKey, CA string
}

// CertFilesIn names the files of a certificate directory.
func CertFilesIn(dir string) CertFiles {
	return CertFiles{Dir: dir, Certificate: filepath.Join(dir, "cert.pem"), PrivateKey: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
}

// WriteCert writes an issued certificate (leaf then chain, key, trust
// bundle) atomically per file, mode 0600.
func WriteCert(f CertFiles, certificate string, chain []string, key, ca string) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	full := strings.TrimSpace(certificate) + "\n"
	for _, c := range chain {
		full += strings.TrimSpace(c) + "\n"
	}
	// Key first, then its certificate: a reader between the two sees a pair
	// that does not match, which grpc-go's file_watcher skips.
	for _, w := range []struct{ path, body string }{{f.PrivateKey, key}, {f.Certificate, full}, {f.CA, ca}} {
		path, body := w.path, w.body
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(strings.TrimSpace(body)+"\n"), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}
