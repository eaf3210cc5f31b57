// Command percorso runs the percorso case-tracking backend (serve) and the
// tools of its auditors and admins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, errFound) {
		os.Exit(1)
	}
	if errors.Is(err, flag.ErrHelp) {
		// Help was asked for and printed: not a failure (as flag's own
		// ExitOnError, and `percorso --help`).
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "percorso:", err)
		os.Exit(1)
	}
}

const usage = `percorso: event-sourced case tracking for public employment offices

Usage:
  percorso serve [flags]     run the command and query APIs and the projectors
  percorso history <path-id | tax-code>
                             a path's (or worker's) full history from the stream
  percorso verify (--all | <path-id | tax-code>)
                             recompute hash chains; exit 1 if anything is wrong
  percorso erase <tax-code>  erase a worker's personal data (admin)
  percorso export --from D --to D [--format csv|jsonl] [events|sessions|paths]
                             export records, for auditors and admins
  percorso rebuild           replay the stream into fresh read models and switch, while serving (admin)
  percorso backup --dir D    snapshot every stream (events, keys, command records) while serving (admin)
  percorso restore --dir D   restore a backup into servers without those streams (admin)
  percorso bench [--quick] [--json]  measure commands, lag, rebuild, history, memory beside raw baselines
  percorso help              show this help

Run "percorso serve -h" for the flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("a subcommand is required")
	}
	switch args[0] {
	case "serve":
		cfg, err := parseServeFlags(args[1:], stderr)
		if err != nil {
			return err
		}
		m := NewMain(cfg, stdout)
		if err := m.Run(ctx); err != nil {
			m.Close()
			return err
		}
		<-ctx.Done()
		return m.Close()
	case "history":
		return runHistory(ctx, args[1:], stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], stdout, stderr)
	case "erase":
		return runErase(ctx, args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "rebuild":
		return runRebuild(ctx, args[1:], stdout, stderr)
	case "backup":
		return runBackup(ctx, args[1:], stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}
