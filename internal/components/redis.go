package components

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures StartRedis.
type RedisOptions struct {
	// Dir holds the log and the password. Empty: a temporary directory
	// removed by Close.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
}

// Redis is a running redis-server on 127.0.0.1 with a password and no
// persistence (Bulkhead keeps caches and counters there, nothing durable).
type Redis struct {
	Addr     string
	Password string
	Dir      string

	proc    *process
	tempDir bool
}

// StartRedis starts redis-server.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	bin, err := systemBinary("redis-server")
	if err != nil {
		return nil, err
	}
	r := &Redis{Password: randomHex(16)}
	setDir := func(dir string, temp bool) { r.Dir, r.tempDir = dir, temp }
	if err := startIn(opts.Dir, "redis", opts.Port, setDir, func(port int) error { return r.start(ctx, bin, port) }); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Redis) start(ctx context.Context, bin string, port int) error {
	// The password goes in a config file, not on the command line where any
	// local user could read it in the process list.
	conf := filepath.Join(r.Dir, "redis.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode yes\nrequirepass %s\nsave \"\"\nappendonly no\ndir %s\ndaemonize no\nlogfile \"\"\n",
		port, r.Password, strconv.Quote(r.Dir))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	proc, err := startProcess("redis", bin, []string{conf}, nil, filepath.Join(r.Dir, "redis.log"), nil)
	if err != nil {
		return err
	}
	r.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	r.proc = proc
	client := r.Client()
	defer client.Close()
	err = proc.waitReady(ctx, 30*time.Second, func(ctx context.Context) error {
		return client.Ping(ctx).Err()
	})
	if err != nil {
		return stopAfterFailedStart(proc, syscall.SIGTERM, err)
	}
	return nil
}

// Client returns a new go-redis client for the server.
func (r *Redis) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.Password})
}

// Close stops the server and removes a temporary directory.
func (r *Redis) Close() error {
	return stopServer(r.proc, syscall.SIGTERM, 10*time.Second, r.Dir, r.tempDir)
}
