package apikey

import (
	"crypto/sha256"
	"hash/crc32"
	"strings"
	"testing"
)

func mustFormat(t testing.TB, prefix string) Format {
	t.Helper()
	f, err := NewFormat(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGenerateThenParse(t *testing.T) {
	f := mustFormat(t, "tk")
	seen := map[string]bool{}
	for _, env := range []string{"live", "test"} {
		for i := 0; i < 200; i++ {
			v, err := f.Generate(env)
			if err != nil {
				t.Fatal(err)
			}
			if want := "tk_" + env + "_"; !strings.HasPrefix(v, want) || len(v) != len(want)+36 {
				t.Fatalf("value %q: want prefix %q and 36 characters after it", v, want)
			}
			got, err := f.Parse(v)
			if err != nil || got != env {
				t.Fatalf("Parse(%q) = %q, %v; want %q", v, got, err, env)
			}
			if seen[v] {
				t.Fatalf("duplicate value %q", v)
			}
			seen[v] = true
		}
	}
}

func TestParseRejects(t *testing.T) {
	f := mustFormat(t, "tk")
	good, err := f.Generate("live")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := []struct{ name, value string }{
		{"empty", ""},
		{"prefix only", "tk_live_"},
		{"other prefix", "ms" + good[2:]},
		{"unknown environment", strings.Replace(good, "_live_", "_prod_", 1)},
		{"random part changed", flip(good, 10)},
		{"checksum changed", flip(good, len(good)-1)},
		{"too short", good[:len(good)-1]},
		{"too long", good + "a"},
		{"non-base62 character", good[:12] + "-" + good[13:]},
		{"surrounding space", " " + good},
		{"prefix without separator", "tklive_" + good[8:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if env, err := f.Parse(tt.value); err == nil {
				t.Fatalf("Parse(%q) = %q, nil; want an error", tt.value, env)
			}
		})
	}
}

func TestCustomPrefix(t *testing.T) {
	f := mustFormat(t, "ms")
	v, err := f.Generate("test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "ms_test_") {
		t.Fatalf("value %q does not start with ms_test_", v)
	}
	if _, err := mustFormat(t, "tk").Parse(v); err == nil {
		t.Fatal("a tk format accepted an ms value")
	}
	for _, bad := range []string{"", "TK", "t_k", "averyveryverylongprefix"} {
		if _, err := NewFormat(bad); err == nil {
			t.Errorf("NewFormat(%q) accepted", bad)
		}
	}
}

func TestChecksumIsCRC32(t *testing.T) {
	for _, s := range []string{"", "tk_live_", "tk_live_0123456789abcdefghijABCDEFGHIJ"} {
		if got, want := checksum(s), crc32.ChecksumIEEE([]byte(s)); got != want {
			t.Errorf("checksum(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestHashAndLast4(t *testing.T) {
	v := "tk_live_abc"
	if Hash(v) != sha256.Sum256([]byte(v)) {
		t.Fatal("Hash is not SHA-256 of the value")
	}
	if Last4(v) != "_abc" {
		t.Fatalf("Last4 = %q", Last4(v))
	}
}

func TestHashAllocatesNothing(t *testing.T) {
	v, _ := mustFormat(t, "tk").Generate("live")
	if n := testing.AllocsPerRun(100, func() { _ = Hash(v) }); n != 0 {
		t.Fatalf("Hash allocates %v times per call", n)
	}
	long := strings.Repeat("x", 300)
	if Hash(long) != sha256.Sum256([]byte(long)) {
		t.Fatal("Hash of a long value is not its SHA-256")
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	f := mustFormat(t, "tk")
	v, _ := f.Generate("live")
	if n := testing.AllocsPerRun(100, func() { _, _ = f.Parse(v) }); n != 0 {
		t.Fatalf("Parse allocates %v times per call", n)
	}
}

func FuzzParse(f *testing.F) {
	format := mustFormat(f, "tk")
	good, _ := format.Generate("live")
	f.Add(good)
	f.Add("tk_test_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		env, err := format.Parse(s)
		if err != nil {
			return
		}
		if env != "live" && env != "test" {
			t.Fatalf("Parse(%q) returned environment %q", s, env)
		}
		if !strings.HasPrefix(s, "tk_"+env+"_") || len(s) != len("tk_"+env+"_")+36 {
			t.Fatalf("Parse accepted %q of the wrong shape", s)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	v, _ := mustFormat(b, "tk").Generate("live")
	b.ReportAllocs()
	for b.Loop() {
		_ = Hash(v)
	}
}

func BenchmarkParse(b *testing.B) {
	f := mustFormat(b, "tk")
	v, _ := f.Generate("live")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Parse(v); err != nil {
			b.Fatal(err)
		}
	}
}
