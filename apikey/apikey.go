// Package apikey defines the format of tokend's token values:
//
//	<prefix>_<env>_<30 random base62 characters><6-character base62 CRC32>
//
// for example tk_live_… and tk_test_…. The checksum covers everything before it,
// so a mistyped or made-up value is rejected before any lookup. Only a SHA-256
// digest of a value is ever stored.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unsafe"
)

const (
	alphabet      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	randomLen     = 30 // 30 base62 characters carry about 178 bits of entropy
	checksumLen   = 6  // 62^6 > 2^32, so any CRC32 fits
	HashSize      = sha256.Size
	DefaultPrefix = "tk"
)

// ErrMalformed is returned for any value that is not a well-formed token of this format.
var ErrMalformed = errors.New("malformed API token")

// Format generates and parses token values with one prefix.
type Format struct {
	prefix string
}

// NewFormat returns the format for prefix, which must be 1 to 16 lowercase
// letters or digits.
func NewFormat(prefix string) (Format, error) {
	if len(prefix) == 0 || len(prefix) > 16 {
		return Format{}, fmt.Errorf("token prefix %q: want 1 to 16 characters", prefix)
	}
	for _, c := range prefix {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return Format{}, fmt.Errorf("token prefix %q: only lowercase letters and digits are allowed", prefix)
		}
	}
	return Format{prefix: prefix}, nil
}

// Generate returns a new random value for env ("live" or "test").
func (f Format) Generate(env string) (string, error) {
	head := f.prefix + "_" + env + "_"
	b := make([]byte, 0, len(head)+randomLen+checksumLen)
	b = append(b, head...)
	var buf [64]byte
	for n := 0; n < randomLen; {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		for _, x := range buf {
			// 248 = 4*62: rejecting larger bytes keeps every character equally likely.
			if x < 248 && n < randomLen {
				b = append(b, alphabet[x%62])
				n++
			}
		}
	}
	b = appendChecksum(b, checksum(string(b)))
	return string(b), nil
}

// Parse checks value's shape and checksum and returns its environment.
// It does no lookup and allocates nothing.
func (f Format) Parse(value string) (env string, err error) {
	rest, ok := strings.CutPrefix(value, f.prefix)
	if !ok || len(rest) == 0 || rest[0] != '_' {
		return "", ErrMalformed
	}
	rest = rest[1:]
	switch {
	case strings.HasPrefix(rest, "live_"):
		env, rest = "live", rest[5:]
	case strings.HasPrefix(rest, "test_"):
		env, rest = "test", rest[5:]
	default:
		return "", ErrMalformed
	}
	if len(rest) != randomLen+checksumLen {
		return "", ErrMalformed
	}
	for i := 0; i < len(rest); i++ {
		if !isBase62(rest[i]) {
			return "", ErrMalformed
		}
	}
	body := value[:len(value)-checksumLen]
	var want [checksumLen]byte
	appendChecksum(want[:0], checksum(body))
	if string(want[:]) != value[len(value)-checksumLen:] {
		return "", ErrMalformed
	}
	return env, nil
}

// Hash returns the SHA-256 digest of value: the only form in which a value is
// stored. Values of up to 128 bytes (every token) are hashed without allocating.
func Hash(value string) [HashSize]byte {
	var buf [128]byte
	if len(value) <= len(buf) {
		return sha256.Sum256(buf[:copy(buf[:], value)])
	}
	return sha256.Sum256([]byte(value))
}

// Last4 returns the last four characters of value, which tokend shows as last_4_digits.
func Last4(value string) string {
	if len(value) < 4 {
		return value
	}
	return value[len(value)-4:]
}

// checksum is CRC-32 (IEEE) of s. It reads s in place: crc32 only reads its
// argument, so viewing the string's bytes without a copy is safe, and it lets
// the hardware-accelerated implementation run with no allocation.
func checksum(s string) uint32 {
	return crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func appendChecksum(b []byte, sum uint32) []byte {
	var c [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		c[i] = alphabet[sum%62]
		sum /= 62
	}
	return append(b, c[:]...)
}

func isBase62(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}
