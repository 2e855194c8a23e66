package alert

import "testing"

func TestNetworkOf(t *testing.T) {
	tests := []struct {
		addr, want string
		ok         bool
	}{
		{"203.0.113.77", "203.0.113.0/24", true},
		{"::ffff:203.0.113.77", "203.0.113.0/24", true},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", true},
		{"not an address", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := NetworkOf(tt.addr)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NetworkOf(%q) = %q, %v; want %q, %v", tt.addr, got, ok, tt.want, tt.ok)
		}
	}
}
