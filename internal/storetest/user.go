package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// Users round-trip, emails are unique whatever their case, and sessions and
// invites are found by hash and end when due.
func testUsersSessionsInvites(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Beta")
	u := &tokend.User{AccountID: a.ID, Email: "ann@example.com", Name: "Ann", Role: tokend.Admin, PasswordHash: "$argon2id$x", CreatedAt: t0}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateUser(ctx, u) })
	v := &tokend.User{AccountID: b.ID, Email: "vic@example.com", Role: tokend.Viewer, PasswordHash: "h", CreatedAt: t0}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateUser(ctx, v) })
	if u.ID == 0 || v.ID <= u.ID {
		t.Fatalf("user ids %d, %d", u.ID, v.ID)
	}
	if err := s.Write(ctx, func(tx tokend.Tx) error {
		return tx.CreateUser(ctx, &tokend.User{AccountID: b.ID, Email: "ANN@example.com", Role: tokend.Viewer, PasswordHash: "h", CreatedAt: t0})
	}); tokend.ErrorCode(err) != tokend.EINVALID {
		t.Errorf("a second user with the same email in another case: %v, want EINVALID", err)
	}
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.UserByEmail(ctx, "Ann@Example.COM")
		if err != nil || *got != *u {
			t.Errorf("UserByEmail = %+v, %v; want %+v", got, err, u)
		}
		if _, err := tx.User(ctx, 999); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("missing user: %v", err)
		}
		all, err := tx.Users(ctx, 0)
		if len(all) != 2 {
			t.Errorf("Users(0) = %d users", len(all))
		}
		mine, _ := tx.Users(ctx, a.ID)
		if len(mine) != 1 || mine[0].ID != u.ID {
			t.Errorf("Users(acme) = %+v", mine)
		}
		return err
	})

	h := sha256.Sum256([]byte("session"))
	sess := &tokend.Session{Hash: h[:], UserID: u.ID, CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(48 * time.Hour)}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateSession(ctx, sess) })
	write(t, s, func(tx tokend.Tx) error { return tx.TouchSession(ctx, h[:], t0.Add(time.Hour)) })
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Session(ctx, h[:])
		if err != nil || got.UserID != u.ID || !got.LastSeenAt.Equal(t0.Add(time.Hour)) || !got.ExpiresAt.Equal(sess.ExpiresAt) || !bytes.Equal(got.Hash, h[:]) {
			t.Errorf("Session = %+v, %v", got, err)
		}
		return err
	})
	// Idle for 12 h after its last use: gone in the sweep; a fresh one stays.
	h2 := sha256.Sum256([]byte("fresh"))
	write(t, s, func(tx tokend.Tx) error {
		return tx.CreateSession(ctx, &tokend.Session{Hash: h2[:], UserID: u.ID, CreatedAt: t0, LastSeenAt: t0.Add(13 * time.Hour), ExpiresAt: t0.Add(48 * time.Hour)})
	})
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteSessionsBefore(ctx, t0.Add(14*time.Hour), 12*time.Hour) })
	read(t, s, func(tx tokend.Tx) error {
		if _, err := tx.Session(ctx, h[:]); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("an idle session survived the sweep: %v", err)
		}
		_, err := tx.Session(ctx, h2[:])
		return err
	})
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteSession(ctx, h2[:]) })

	ih := sha256.Sum256([]byte("invite"))
	write(t, s, func(tx tokend.Tx) error {
		return tx.CreateInvite(ctx, &tokend.Invite{Hash: ih[:], AccountID: a.ID, Role: tokend.Admin, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
	})
	read(t, s, func(tx tokend.Tx) error {
		inv, err := tx.Invite(ctx, ih[:])
		if err != nil || inv.AccountID != a.ID || inv.Role != tokend.Admin || !inv.ExpiresAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("Invite = %+v, %v", inv, err)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteInvite(ctx, ih[:]) })
	write(t, s, func(tx tokend.Tx) error {
		if err := tx.DeleteInvite(ctx, ih[:]); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("an invite used twice: %v", err)
		}
		return nil
	})

	// DeleteInvites ends every invite of one account, and no other's.
	var hashes [][]byte
	for i, acct := range []int64{a.ID, a.ID, b.ID} {
		h := sha256.Sum256([]byte{byte(i)})
		hashes = append(hashes, h[:])
		write(t, s, func(tx tokend.Tx) error {
			return tx.CreateInvite(ctx, &tokend.Invite{Hash: h[:], AccountID: acct, Role: tokend.Viewer, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
		})
	}
	write(t, s, func(tx tokend.Tx) error {
		if n, err := tx.DeleteInvites(ctx, a.ID); n != 2 || err != nil {
			t.Errorf("DeleteInvites = %d, %v; want 2", n, err)
		}
		return nil
	})
	read(t, s, func(tx tokend.Tx) error {
		for i, h := range hashes {
			_, err := tx.Invite(ctx, h)
			if gone := tokend.ErrorCode(err) == tokend.ENOTFOUND; gone != (i < 2) {
				t.Errorf("invite %d: %v after deleting account %d's invites", i, err, a.ID)
			}
		}
		return nil
	})
	write(t, s, func(tx tokend.Tx) error {
		if n, err := tx.DeleteInvites(ctx, a.ID); n != 0 || err != nil {
			t.Errorf("DeleteInvites with none left = %d, %v; want 0", n, err)
		}
		return nil
	})
}
