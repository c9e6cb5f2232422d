package main

import (
	"strings"
	"testing"
)

func TestCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		wantText string
	}{
		{nil, 2, "usage: bulkhead <command>"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"up", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"up", "--no-such-flag"}, 2, "flag provided but not defined: -no-such-flag"},
		{[]string{"help"}, 0, "up    run the platform locally"},
	} {
		var out, errOut strings.Builder
		code := run(tc.args, &out, &errOut)
		if code != tc.code {
			t.Errorf("bulkhead %v: exit %d; want %d", tc.args, code, tc.code)
		}
		if text := out.String() + errOut.String(); !strings.Contains(text, tc.wantText) {
			t.Errorf("bulkhead %v printed %q; want it to contain %q", tc.args, text, tc.wantText)
		}
	}
}
