package pki

import (
	"context"
	"log/slog"
	"time"
)

// RetryRenewal is how soon a failed renewal is tried again; the current
// certificate stays in place meanwhile.
const RetryRenewal = 10 * time.Second

// Keep issues a certificate into files, then renews it at two thirds of
// its life until stop is called. A failed renewal is logged and retried
// after RetryRenewal. The first issue's error is returned.
func Keep(ctx context.Context, log *slog.Logger, what string, issue func(context.Context) (*Issued, error), files CertFiles) (stop func(), err error) {
	once := func(ctx context.Context) (time.Time, error) {
		iss, err := issue(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if err := iss.Write(files); err != nil {
			return time.Time{}, err
		}
		return iss.RenewAt(), nil
	}
	renewAt, err := once(ctx)
	if err != nil {
		return nil, err
	}
	renewCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-time.After(time.Until(renewAt)):
			}
			next, err := once(renewCtx)
			if err != nil {
				log.Error("renewing a workload certificate", "identity", what, "error", err)
				next = time.Now().Add(RetryRenewal)
			}
			renewAt = next
		}
	}()
	return cancel, nil
}
