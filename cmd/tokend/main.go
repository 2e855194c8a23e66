// Command tokend is the API token service. See "tokend help".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tokend/tokend/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil && cli.ExitCode(err) == 1 {
		os.Stderr.WriteString("tokend: " + err.Error() + "\n")
	}
	os.Exit(cli.ExitCode(err))
}
