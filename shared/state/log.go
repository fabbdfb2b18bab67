package state

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// LogTo routes go-redis's own log lines (a pool that cannot dial during an
// outage, a cluster that moved a slot) through l at warn level, so that in
// JSON log mode every line on stderr is JSON. go-redis keeps one logger for
// the process; the last call wins.
func LogTo(l *slog.Logger) {
	if l == nil {
		return
	}
	redis.SetLogger(redisLogger{l})
}

type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}
