package postgrescdc

import (
	"context"
	"errors"
	"fmt"
	"github.com/rivven/rivven-connect/shared/connector"
	"strings"
)

// Check verifies what streaming needs, saying what to change when
// something is missing: connectivity, wal_level = logical, the REPLICATION
// attribute (or superuser), free replication slots, and that the
// publication exists or can be created.
func (s *Source) Check(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var problems []string
	var walLevel string
	if err := conn.QueryRow(ctx, `SHOW wal_level`).Scan(&walLevel); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	// initial_only reads tables only: no slot, no replication.
	streaming := s.cfg.Snapshot.Mode != "initial_only"
	if streaming && walLevel != "logical" {
		problems = append(problems, fmt.Sprintf("wal_level is %q: set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart the server", walLevel))
	}
	var super, repl, canCreate bool
	if err := conn.QueryRow(ctx, `SELECT rolsuper, rolreplication, has_database_privilege(current_database(), 'CREATE') FROM pg_roles WHERE rolname = current_user`).Scan(&super, &repl, &canCreate); err != nil {
		return fmt.Errorf("read role attributes: %w", err)
	}
	if streaming && !super && !repl {
		problems = append(problems, fmt.Sprintf("user %q has neither REPLICATION nor SUPERUSER: run ALTER ROLE %s WITH REPLICATION", s.cfg.User, quoteIdent(s.cfg.User)))
	}
	slot, err := readSlot(ctx, conn, s.cfg.SlotName)
	if err != nil {
		return err
	}
	switch {
	case !streaming:
	case slot.exists && slot.plugin != "pgoutput":
		problems = append(problems, fmt.Sprintf("replication slot %q uses plugin %q: drop it (SELECT pg_drop_replication_slot('%s')) or choose another slot_name", s.cfg.SlotName, slot.plugin, s.cfg.SlotName))
	case slot.exists && slot.database != s.cfg.Database:
		problems = append(problems, fmt.Sprintf("replication slot %q belongs to database %q: choose another slot_name", s.cfg.SlotName, slot.database))
	case !slot.exists && !s.cfg.AutoCreateSlot:
		problems = append(problems, fmt.Sprintf("replication slot %q does not exist and auto_create_slot is false: create it (SELECT pg_create_logical_replication_slot('%s', 'pgoutput')) or set auto_create_slot: true", s.cfg.SlotName, s.cfg.SlotName))
	case !slot.exists:
		var used, maxSlots int
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots)::int, current_setting('max_replication_slots')::int`).Scan(&used, &maxSlots); err == nil && used >= maxSlots {
			problems = append(problems, fmt.Sprintf("all %d replication slots are in use: raise max_replication_slots or drop an unused slot", maxSlots))
		}
	}
	var pubExists, allTables bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1), COALESCE((SELECT puballtables FROM pg_publication WHERE pubname = $1), false)`, s.cfg.PublicationName).Scan(&pubExists, &allTables)
	if err != nil {
		return fmt.Errorf("look up publication: %w", err)
	}
	switch {
	case pubExists:
	case !s.cfg.AutoCreatePublication:
		problems = append(problems, fmt.Sprintf("publication %q does not exist and auto_create_publication is false: run CREATE PUBLICATION %s %s", s.cfg.PublicationName, quoteIdent(s.cfg.PublicationName), publicationTarget(s.cfg.PublicationTables)))
	case len(s.cfg.PublicationTables) == 0 && !super:
		problems = append(problems, fmt.Sprintf("publication %q does not exist and creating it FOR ALL TABLES needs a superuser: list the tables in publication_tables, or have a superuser run CREATE PUBLICATION %s FOR ALL TABLES", s.cfg.PublicationName, quoteIdent(s.cfg.PublicationName)))
	case !canCreate && !super:
		problems = append(problems, fmt.Sprintf("publication %q does not exist and user %q lacks CREATE on database %q: GRANT CREATE ON DATABASE %s TO %s, or create the publication beforehand", s.cfg.PublicationName, s.cfg.User, s.cfg.Database, quoteIdent(s.cfg.Database), quoteIdent(s.cfg.User)))
	default:
		for _, t := range s.cfg.PublicationTables {
			sch, name, _ := splitTable(t, true)
			var ok bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p'))`, sch, name).Scan(&ok); err == nil && !ok {
				problems = append(problems, fmt.Sprintf("publication_tables: table %s does not exist", t))
			}
		}
	}
	if len(problems) > 0 {
		return connector.Fatal(errors.New("postgres-cdc check failed: " + strings.Join(problems, "; ")))
	}
	return nil
}

// Discover lists the tables the source would capture: columns, primary
// key, row estimate and, when updates or deletes cannot be captured, why.
// Without the publication yet, it lists every table the config selects.
func (s *Source) Discover(ctx context.Context) ([]connector.Stream, error) {
	conn, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var pubExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.cfg.PublicationName).Scan(&pubExists); err != nil {
		return nil, err
	}
	pub := ""
	if pubExists {
		pub = s.cfg.PublicationName
	}
	tables, err := listTables(ctx, conn, pub)
	if err != nil {
		return nil, err
	}
	var out []connector.Stream
	for _, t := range tables {
		if !pubExists && len(s.cfg.PublicationTables) > 0 && !matchAny(s.cfg.PublicationTables, t.Schema, t.Name) {
			continue
		}
		if !s.capture.match(t.Schema, t.Name) {
			continue
		}
		st := connector.Stream{Namespace: t.Schema, Name: t.Name, PrimaryKey: t.PK, RowEstimate: t.Estimate, Note: identityNote(t)}
		if t.Identity == 'f' {
			st.Note = "REPLICA IDENTITY FULL: updates and deletes carry the whole old row"
		}
		if !s.snapshotted(t) {
			st.Note = strings.TrimPrefix(st.Note+"; excluded from the snapshot (snapshot.include_tables/exclude_tables)", "; ")
		}
		pk := map[string]bool{}
		for _, k := range t.PK {
			pk[k] = true
		}
		for _, c := range t.Columns {
			if s.keepColumn(t.fullName(), c.Name, pk[c.Name]) {
				st.Columns = append(st.Columns, connector.Column{Name: c.Name, Type: c.Type, Nullable: c.Nullable})
			}
		}
		out = append(out, st)
	}
	return out, nil
}
