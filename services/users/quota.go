package users

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The quota lives in Redis so that admission is one atomic script per
// request across every users replica; the balance there mirrors the
// database's (loaded when missing, debited on commit with the ledger).
// Keys per account (hash-tagged by account): users:{A}:res (reservations:
// id → hold|tokens|expiry), users:{A}:bal, users:{A}:tpm:MINUTE,
// users:{A}:rpm:MINUTE.

//go:embed reserve.lua
var reserveLua string

//go:embed commit.lua
var commitLua string

var (
	reserveScript = redis.NewScript(reserveLua)
	commitScript  = redis.NewScript(commitLua)
)

// ReservationTTL is how long an uncommitted reservation holds quota; a
// request that runs longer is still committed (its usage is recorded) but
// its hold stops counting.
const ReservationTTL = 15 * time.Minute

type quota struct{ rdb *redis.Client }

func accountKeys(account string, minute int64) (res, bal, tpm, rpm string) {
	p := "users:{" + account + "}:"
	m := strconv.FormatInt(minute, 10)
	return p + "res", p + "bal", p + "tpm:" + m, p + "rpm:" + m
}

// reservationID carries what Commit needs to find the reservation again.
func reservationID(account string, minute int64, requestID string) string {
	return account + "/" + strconv.FormatInt(minute, 10) + "/" + requestID
}

func parseReservationID(id string) (account string, minute int64, requestID string, err error) {
	parts := strings.SplitN(id, "/", 3)
	if len(parts) != 3 {
		return "", 0, "", fmt.Errorf("malformed reservation id %q", id)
	}
	minute, err = strconv.ParseInt(parts[1], 10, 64)
	return parts[0], minute, parts[2], err
}

type limits struct {
	concurrent, tpm, rpm int64
}

// reserve admits a request or says which limit refuses it.
func (q *quota) reserve(ctx context.Context, account, requestID string, hold, tokens int64, l limits, balance func() (int64, error), now time.Time) (string, string, error) {
	minute := now.Unix() / 60
	res, bal, tpm, rpm := accountKeys(account, minute)
	run := func() (string, error) {
		return reserveScript.Run(ctx, q.rdb, []string{res, bal, tpm, rpm},
			reservationID(account, minute, requestID), hold, tokens, now.UnixMilli(), ReservationTTL.Milliseconds(),
			l.concurrent, l.tpm, l.rpm).Text()
	}
	r, err := run()
	if err == nil && r == "NO_BALANCE" {
		b, berr := balance()
		if berr != nil {
			return "", "", berr
		}
		if serr := q.rdb.SetNX(ctx, bal, b, 0).Err(); serr != nil {
			return "", "", serr
		}
		r, err = run()
	}
	if err != nil {
		return "", "", err
	}
	return reservationID(account, minute, requestID), r, nil
}

// settle ends a reservation once: debits cost from the mirrored balance
// (also when the reservation expired before its request ended) and gives
// back the unused tokens of its minute. It reports whether the
// reservation was still active (false: settled before, or expired), and
// the mirrored balance after (0 when it is not loaded).
func (q *quota) settle(ctx context.Context, reservation string, cost, tokens int64) (bool, int64, error) {
	account, minute, _, err := parseReservationID(reservation)
	if err != nil {
		return false, 0, err
	}
	res, bal, tpm, _ := accountKeys(account, minute)
	done := "users:{" + account + "}:done:" + reservation
	r, err := commitScript.Run(ctx, q.rdb, []string{res, bal, tpm, done}, reservation, cost, tokens, settledTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return false, 0, err
	}
	return r[0] == 1, r[1], nil
}

// settledTTL is how long a settled reservation is remembered, so that a
// retried Commit or Refund changes nothing: longer than any reservation
// lives.
const settledTTL = ReservationTTL + 5*time.Minute

// balance is the mirrored balance: the database's less what was settled
// and is not in the ledger yet (false when it is not loaded).
func (q *quota) balance(ctx context.Context, account string) (int64, bool, error) {
	_, bal, _, _ := accountKeys(account, 0)
	v, err := q.rdb.Get(ctx, bal).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	return v, err == nil, err
}

// adjust moves the mirrored balance (a top-up).
func (q *quota) adjust(ctx context.Context, account string, delta int64) error {
	_, bal, _, _ := accountKeys(account, 0)
	// Only an already-loaded mirror is adjusted; a missing one is loaded
	// from the database, which has the change.
	return q.rdb.Eval(ctx, `if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return 0`, []string{bal}, delta).Err()
}
