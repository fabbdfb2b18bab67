package snowflake

import (
	"context"
	"crypto/rsa"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rivven/rivven-connect/shared/resilience"
)

// sqlClient runs the sink's SQL (check, DESCRIBE TABLE, SHOW GRANTS,
// CREATE TABLE) through the gosnowflake driver, logged in with the same
// key pair as the streaming calls (the SNOWFLAKE_JWT authenticator) in
// role, warehouse, database and schema. The session is opened on first
// use and closed (logged out) after a minute without statements, so a
// function does not keep one.
type sqlClient struct {
	dc *sf.Config
	// timeout bounds each statement, its login included
	// (request_timeout_secs).
	timeout time.Duration

	mu sync.Mutex
	db *sql.DB
}

// Snowflake's error numbers the sink tells apart.
const (
	sfObjectNotFound = 2003 // SQL compilation error: ... does not exist or not authorized
	sfAccessDenied   = 3001 // SQL access control error: Insufficient privileges
)

func newSQLClient(cfg *Config, key *rsa.PrivateKey) (*sqlClient, error) {
	u, err := url.Parse(cfg.baseURL())
	if err != nil {
		return nil, err
	}
	port := 443
	if u.Scheme == "http" {
		port = 80
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("url: port %q", p)
		}
	}
	return &sqlClient{timeout: time.Duration(cfg.RequestTimeoutSecs) * time.Second, dc: &sf.Config{
		Account: cfg.Account, User: cfg.User,
		Role: cfg.Role, Warehouse: cfg.Warehouse, Database: cfg.Database, Schema: cfg.Schema,
		Authenticator: sf.AuthTypeJwt, PrivateKey: key,
		Host: u.Hostname(), Port: port, Protocol: u.Scheme,
		Application: userAgent,
		// The driver's (process-wide) logger off: it logs every refused
		// login and failed statement at error level on stderr in its own
		// format, while the sink returns the same errors to the engine,
		// which logs them once. Its only setting in this driver version.
		//lint:ignore SA1019 no replacement in gosnowflake v1.19
		Tracing: "OFF",
	}}, nil
}

func (c *sqlClient) handle() *sql.DB {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		c.db = sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *c.dc))
		c.db.SetMaxOpenConns(1)
		c.db.SetConnMaxIdleTime(time.Minute)
		// Well inside the session token's validity (an hour by default),
		// so a session is replaced rather than renewed.
		c.db.SetConnMaxLifetime(30 * time.Minute)
	}
	return c.db
}

// sqlResult is a statement's result: column names and rows of strings
// (NULL as nil).
type sqlResult struct {
	cols []string
	rows [][]*string
}

// col returns the index of a result column (case-insensitive), -1 if none.
func (r *sqlResult) col(name string) int {
	for i, c := range r.cols {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

// query runs one statement and reads its whole result.
func (c *sqlClient) query(ctx context.Context, stmt string) (*sqlResult, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rows, err := c.handle().QueryContext(ctx, stmt)
	if err != nil {
		return nil, classifySQL(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, classifySQL(err)
	}
	res := &sqlResult{cols: cols}
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, classifySQL(err)
		}
		row := make([]*string, len(cols))
		for i, v := range vals {
			if v.Valid {
				row[i] = &v.String
			}
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, classifySQL(err)
	}
	return res, nil
}

// close logs the session out.
func (c *sqlClient) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == nil {
		return nil
	}
	err := c.db.Close()
	c.db = nil
	return err
}

// classifySQL gives a driver error its resilience class: a refused login
// (Snowflake's 390xxx) and missing privileges are Auth, an object that
// does not exist NotFound, other SQL errors Fatal, and what never got an
// answer Connection.
func classifySQL(err error) error {
	var se *sf.SnowflakeError
	if errors.As(err, &se) {
		switch n := se.Number; {
		case n >= 390000 && n < 391000, n == sfAccessDenied:
			return resilience.New(resilience.Auth, err)
		case n == sfObjectNotFound:
			return resilience.New(resilience.NotFound, err)
		case strings.HasPrefix(se.SQLState, "08"): // connection exceptions
			return resilience.New(resilience.Connection, err)
		case n > 0 && n < 270000:
			// Snowflake's own statement errors (SQL compilation, access
			// control, ...); the driver's client-side numbers are 26xxxx.
			return resilience.New(resilience.Fatal, err)
		}
		return resilience.New(resilience.Connection, err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return resilience.New(resilience.Timeout, err)
	}
	return resilience.New(resilience.Connection, err)
}

// sqlNumber is the Snowflake error number of err, 0 if none.
func sqlNumber(err error) int {
	var se *sf.SnowflakeError
	if errors.As(err, &se) {
		return se.Number
	}
	return 0
}

// checkSession logs in and reads the session's role and warehouse: a
// warehouse that does not exist or the role may not use leaves the
// session without one (the login does not fail), so it is caught here.
func (c *sqlClient) checkSession(ctx context.Context, cfg *Config) (role string, err error) {
	res, err := c.query(ctx, "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()")
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	if len(res.rows) != 1 || len(res.rows[0]) != 2 {
		return "", resilience.Errorf(resilience.Fatal, "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE(): unexpected result")
	}
	if r := res.rows[0][0]; r != nil {
		role = *r
	}
	if cfg.Warehouse != "" && res.rows[0][1] == nil {
		return role, resilience.Errorf(resilience.Auth, "warehouse %s does not exist or role %s may not use it", cfg.Warehouse, role)
	}
	return role, nil
}

// holds reports whether the session's roles (its role and the roles
// granted to it) hold one of the privileges on the object: SHOW GRANTS
// ON it lists the grantee roles, IS_ROLE_IN_SESSION tells which of them
// the session has.
func (c *sqlClient) holds(ctx context.Context, objType, object string, privileges ...string) (bool, error) {
	res, err := c.query(ctx, "SHOW GRANTS ON "+objType+" "+object)
	if err != nil {
		return false, err
	}
	iPriv, iTo, iName := res.col("privilege"), res.col("granted_to"), res.col("grantee_name")
	if iPriv < 0 || iTo < 0 || iName < 0 {
		return false, resilience.Errorf(resilience.Fatal, "SHOW GRANTS: unexpected result columns %v", res.cols)
	}
	asked := map[string]bool{}
	for _, row := range res.rows {
		if row[iPriv] == nil || row[iTo] == nil || row[iName] == nil || *row[iTo] != "ROLE" {
			continue
		}
		for _, p := range privileges {
			if strings.EqualFold(*row[iPriv], p) && !asked[*row[iName]] {
				asked[*row[iName]] = true
				in, err := c.query(ctx, "SELECT IS_ROLE_IN_SESSION('"+strings.ReplaceAll(*row[iName], "'", "''")+"')")
				if err != nil {
					return false, err
				}
				if len(in.rows) == 1 && in.rows[0][0] != nil {
					if b, _ := strconv.ParseBool(*in.rows[0][0]); b {
						return true, nil
					}
				}
			}
		}
	}
	return false, nil
}
