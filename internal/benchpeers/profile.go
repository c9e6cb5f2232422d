package benchpeers

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Profile takes, from every process of t that serves its profiles, a CPU
// profile of the next seconds and then its allocations, into dir as
// PROCESS.cpu.pprof and PROCESS.allocs.pprof (read them with go tool
// pprof). It returns when the CPU profiles are in; call it beside the
// load.
func Profile(t *Target, dir string, seconds int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Duration(seconds+30) * time.Second}
	get := func(url, path string) error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(t.Profiles))
	for name, addr := range t.Profiles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := "http://" + addr + "/debug/pprof/"
			if err := get(fmt.Sprintf("%sprofile?seconds=%d", base, seconds), filepath.Join(dir, name+".cpu.pprof")); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			if err := get(base+"allocs", filepath.Join(dir, name+".allocs.pprof")); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}
