package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/tokend/tokend/client"
)

// A client holds one token; every method takes a context first.
func Example() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	me, err := c.Whoami(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("token %d (%s) of account %d\n", me.ID, me.Name, me.AccountID)
}

// Issue a token for a CI job: viewer on one project, expiring in 30 days.
// Its value is in this answer only.
func ExampleClient_CreateToken() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
	project, err := c.CreateProject(ctx, "Web")
	if err != nil {
		log.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, client.NewToken{
		Name:        "CI deploys",
		Permissions: []client.Permission{{ResourceType: "project", ResourceID: project.ID, AccessLevel: client.Viewer}},
		ExpiresAt:   client.ExpiresAt(time.Now().Add(30 * 24 * time.Hour)),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("store this now, it is not shown again:", tok.Value)
}

// Rotate a token: the new value works at once, the old one until the
// server's grace period ends.
func ExampleClient_ResetToken() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
	const id = 42
	fresh, err := c.ResetToken(ctx, id, client.NeverExpires())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new token", fresh.ID, "value", fresh.Value)
}

// Branch on tokend's answer: status, code, the fields of a 422, and when
// to retry a 429.
func ExampleError() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
	_, err := c.CreateToken(ctx, client.NewToken{Name: ""})
	var e *client.Error
	switch {
	case err == nil:
	case errors.As(err, &e) && e.Status == http.StatusUnprocessableEntity:
		fmt.Println("fix the input:", e.Fields)
	case errors.As(err, &e) && e.Status == http.StatusTooManyRequests:
		time.Sleep(e.RetryAfter)
	case errors.As(err, &e) && e.Code == "invalid_api_key":
		log.Fatal("the token is wrong")
	case client.IsNotFound(err):
		log.Fatal("no such thing in this account")
	default:
		log.Fatal(err)
	}
}

// A service checks the token it was handed, and what it may do.
func ExampleClient_Verify() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_SERVICE_TOKEN"))
	presented := "tk_live_..." // from the request
	v, err := c.Verify(ctx, presented, client.MustPermission("project:3:viewer"))
	if err != nil {
		log.Fatal(err) // tokend could not answer: refuse, or retry
	}
	if !v.Valid {
		fmt.Println("refused:", v.Code)
		return
	}
	fmt.Println("token", v.TokenID, "may read project 3")
}

// A cache follows the account's changes: forget everything at ready, one
// token at a token event, and so on.
func ExampleClient_AuthChanges() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_SERVICE_TOKEN"))
	s, err := c.AuthChanges(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			log.Print("stream over, reconnect: ", err)
			return
		}
		switch ev.Kind {
		case client.EventReady, client.EventFlush, client.EventAccount:
			fmt.Println("forget every cached token")
		case client.EventToken:
			fmt.Println("forget token", ev.TokenID)
		}
	}
}

// Send into a sandbox, then read the captured email back, as a test of an
// application's mail does.
func ExampleClient_SendToSandbox() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
	const sandboxID = 7
	_, err := c.SendToSandbox(ctx, sandboxID, &client.Email{
		From:    client.Address{Email: "app@example.com", Name: "App"},
		To:      []client.Address{{Email: "user@example.org"}},
		Subject: "Welcome",
		Text:    "Hello!",
		HTML:    "<p>Hello!</p>",
		Attachments: []client.Attachment{
			{Filename: "terms.txt", Content: []byte("Be nice.")},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	msgs, err := c.ListMessages(ctx, sandboxID, client.MessageListOptions{Search: "user@example.org"})
	if err != nil || len(msgs) == 0 {
		log.Fatal("not captured: ", err)
	}
	html, err := c.MessageBody(ctx, sandboxID, msgs[0].ID, client.BodyHTML)
	if err != nil {
		log.Fatal(err)
	}
	var terms bytes.Buffer
	if err := c.DownloadAttachment(ctx, sandboxID, msgs[0].ID, 1, &terms); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s, attachment %q\n", msgs[0].Subject, html, terms.String())
}

// Send live mail from a sending domain, then follow its delivery.
func ExampleClient_Send() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
	sent, err := c.Send(ctx, &client.Email{
		From:    client.Address{Email: "news@mail.example.com"},
		To:      []client.Address{{Email: "ann@example.org"}},
		Subject: "Your order",
		Text:    "Thanks!",
	})
	if err != nil {
		log.Fatal(err)
	}
	l, err := c.GetEmailLog(ctx, sent.MessageIDs[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.To, l.Status, l.DeliveryStatus)
}

// Walk the whole audit log, page by page.
func ExampleClient_AuditEvents() {
	ctx := context.Background()
	c, _ := client.New("http://127.0.0.1:8080", os.Getenv("TOKEND_TOKEN"))
	for ev, err := range c.AuditEvents(ctx, 100) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.At.Format(time.RFC3339), ev.Actor, ev.Action, ev.TargetType, ev.TargetID)
	}
}
