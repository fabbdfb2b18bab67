package snowflakefake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
)

// The driver protocol, as Snowflake's drivers (gosnowflake, JDBC) speak
// it and gosnowflake's restful.go, auth.go and query.go define it:
//
//	POST /session/v1/login-request?databaseName&schemaName&warehouse&roleName
//	     {"data":{"ACCOUNT_NAME","LOGIN_NAME","AUTHENTICATOR":"SNOWFLAKE_JWT","TOKEN":<key-pair JWT>,...}}
//	POST /queries/v1/query-request?requestId&request_guid
//	     Authorization: Snowflake Token="<session token>"; {"sqlText":...,"sequenceId":n,...}
//	POST /session?delete=true   (logout)
//
// Every answer is HTTP 200 with {"data":...,"code":...,"message":...,
// "success":bool}; a refused login or statement is success=false with
// Snowflake's error code (390144 invalid JWT, 390189 role not granted,
// 390112 session expired, 002003 object does not exist or not
// authorized, 003001 insufficient privileges, 001003 syntax error) and,
// for statements, the SQLSTATE in data.sqlState. Results are JSON
// (queryResultFormat "json": rowtype and a rowset of strings), which the
// driver reads as it reads Snowflake's.

type session struct {
	role, warehouse, db, schema string
	expires                     time.Time
	seq                         uint64
}

type grant struct{ privilege, objType, object, role string }

// Grant grants a privilege on an object to a role, as GRANT does:
// Grant("INSERT", "TABLE", "DB.SCHEMA.T", "LOADER"),
// Grant("CREATE TABLE", "SCHEMA", "DB.SCHEMA", "LOADER"). The fake's SQL
// shows a table only to a session holding some privilege on it (its
// primary role or a role granted to it), and creates one only with
// CREATE TABLE or OWNERSHIP on the schema; the creator's role owns it.
func (s *Server) Grant(privilege, objType, object, role string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants = append(s.grants, grant{strings.ToUpper(privilege), strings.ToUpper(objType), strings.ToUpper(object), strings.ToUpper(role)})
}

// Statements is the SQL text of every statement run, in order.
func (s *Server) Statements() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.statements...)
}

// Sessions is the number of driver sessions logged in and not logged out.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// reply is the envelope of every driver-protocol answer.
func reply(data any) map[string]any {
	return map[string]any{"data": data, "code": nil, "message": nil, "success": true}
}

func refuse(code, sqlState, format string, args ...any) map[string]any {
	data := map[string]any{"internalError": false}
	if sqlState != "" {
		data["sqlState"] = sqlState
		data["queryId"] = newID()
		data["errorCode"] = code
	}
	return map[string]any{"data": data, "code": code, "message": fmt.Sprintf(format, args...), "success": false}
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) granted(role string) bool {
	for _, g := range s.Roles {
		if strings.EqualFold(g, role) {
			return true
		}
	}
	return false
}

// login is POST /session/v1/login-request with the SNOWFLAKE_JWT
// authenticator.
func (s *Server) login(r *http.Request, body []byte) (any, *apiErr) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return nil, fail(http.StatusBadRequest, "390100", "content type must be application/json")
	}
	var req struct {
		Data struct {
			AccountName   string `json:"ACCOUNT_NAME"`
			LoginName     string `json:"LOGIN_NAME"`
			Authenticator string `json:"AUTHENTICATOR"`
			Token         string `json:"TOKEN"`
			ClientAppID   string `json:"CLIENT_APP_ID"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fail(http.StatusBadRequest, "390100", "login request is not JSON: %v", err)
	}
	d := req.Data
	if d.Authenticator != "SNOWFLAKE_JWT" {
		return refuse("390100", "", "Incorrect username or password was specified (the fake accepts SNOWFLAKE_JWT only, got %q).", d.Authenticator), nil
	}
	acct, _, _ := strings.Cut(strings.ToUpper(s.Account), ".")
	if name, _, _ := strings.Cut(strings.ToUpper(d.AccountName), "."); name != acct {
		return refuse("390201", "", "The requested account %s does not exist or is not reachable at this URL.", d.AccountName), nil
	}
	// A key-pair login names its user in the JWT's sub (gosnowflake sends
	// no LOGIN_NAME with it); one that is sent must be that user.
	if d.LoginName != "" && !strings.EqualFold(d.LoginName, s.User) {
		return refuse("390144", "", "JWT token is invalid: login name %q is not the token's user.", d.LoginName), nil
	}
	if e := s.checkJWT(d.Token); e != nil {
		return refuse(e.code, "", "%s", e.msg), nil
	}
	q := r.URL.Query()
	ss := &session{db: strings.ToUpper(q.Get("databaseName")), schema: strings.ToUpper(q.Get("schemaName")),
		expires: s.now().Add(time.Hour)}
	switch role := q.Get("roleName"); {
	case role != "" && !s.granted(role):
		return refuse("390189", "", "Role '%s' specified in the connect string is not granted to this user. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC.", strings.ToUpper(role)), nil
	case role != "":
		ss.role = strings.ToUpper(role)
	case s.DefaultRole != "":
		ss.role = strings.ToUpper(s.DefaultRole)
	default:
		ss.role = "PUBLIC"
	}
	// A warehouse that does not exist (or the role may not use) leaves
	// the session without one; the login itself succeeds.
	if wh := strings.ToUpper(q.Get("warehouse")); wh != "" {
		for _, w := range s.Warehouses {
			if strings.EqualFold(w, wh) {
				ss.warehouse = wh
			}
		}
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := "ver:1-hint:" + hex.EncodeToString(b)
	rand.Read(b)
	s.sessions[tok] = ss
	s.sessionID++
	return reply(map[string]any{
		"token": tok, "validityInSeconds": 3600,
		"masterToken": "ver:1-hint:" + hex.EncodeToString(b), "masterValidityInSeconds": 14400,
		"sessionId": s.sessionID, "serverVersion": "fake", "displayUserName": strings.ToUpper(s.User),
		"parameters": []map[string]any{{"name": "TIMEZONE", "value": "Etc/UTC"}, {"name": "CLIENT_SESSION_KEEP_ALIVE", "value": false}},
		"sessionInfo": map[string]any{"databaseName": nullable(ss.db), "schemaName": nullable(ss.schema),
			"warehouseName": nullable(ss.warehouse), "roleName": ss.role},
	}), nil
}

func nullable(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// sessionOf resolves the Authorization: Snowflake Token="..." header.
func (s *Server) sessionOf(r *http.Request) (*session, map[string]any) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, `Snowflake Token="`)
	tok, ok2 := strings.CutSuffix(tok, `"`)
	if !ok || !ok2 {
		return nil, refuse("390101", "", "Authorization header is missing or not a Snowflake session token.")
	}
	ss := s.sessions[tok]
	switch {
	case ss == nil:
		return nil, refuse("390104", "", "Invalid session token: the session does not exist or was closed.")
	case !s.now().Before(ss.expires):
		return nil, refuse("390112", "", "Your session has expired. Please login again.")
	}
	return ss, nil
}

// logout is POST /session?delete=true.
func (s *Server) logout(r *http.Request) (any, *apiErr) {
	if _, bad := s.sessionOf(r); bad != nil {
		return bad, nil
	}
	tok := strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Authorization"), `Snowflake Token="`), `"`)
	delete(s.sessions, tok)
	return reply(nil), nil
}

// roles is the session's role hierarchy: its primary role, the roles
// granted to it (RoleGrants, transitively) and PUBLIC.
func (s *Server) roles(ss *session) map[string]bool {
	in := map[string]bool{"PUBLIC": true}
	var add func(string)
	add = func(r string) {
		r = strings.ToUpper(r)
		if in[r] && r != "PUBLIC" {
			return
		}
		in[r] = true
		for _, g := range s.RoleGrants[r] {
			add(g)
		}
	}
	add(ss.role)
	return in
}

// holds reports whether the session holds one of the privileges on the
// object (any privilege when none is named).
func (s *Server) holds(ss *session, objType, object string, privileges ...string) bool {
	in := s.roles(ss)
	for _, g := range s.grants {
		if g.objType != objType || g.object != object || !in[g.role] {
			continue
		}
		if len(privileges) == 0 {
			return true
		}
		for _, p := range privileges {
			if g.privilege == p {
				return true
			}
		}
	}
	return false
}

// column is one column of a result's rowtype.
type rcol struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
	Length   int    `json:"length"`
	ByteLen  int    `json:"byteLength"`
}

func textCol(name string) rcol {
	return rcol{Name: name, Type: "text", Nullable: true, Length: 16777216, ByteLen: 16777216}
}

// Statement type ids as the service reports them (the driver treats DML
// and multi-statement ids specially; these are neither).
const (
	typeSelect = 0x1000
	typeSCL    = 0x4000 // SHOW, DESCRIBE
	typeDDL    = 0x6000
)

func (s *Server) result(ss *session, typ int, cols []rcol, rows [][]*string) map[string]any {
	if rows == nil {
		rows = [][]*string{}
	}
	return reply(map[string]any{
		"parameters": []any{}, "rowtype": cols, "rowset": rows, "total": len(rows), "returned": len(rows),
		"queryId": newID(), "queryResultFormat": "json", "statementTypeId": typ, "version": 1,
		"finalDatabaseName": nullable(ss.db), "finalSchemaName": nullable(ss.schema),
		"finalWarehouseName": nullable(ss.warehouse), "finalRoleName": ss.role,
	})
}

func str(v string) *string { return &v }

var (
	reDescribe  = regexp.MustCompile(`(?is)^\s*DESC(?:RIBE)?\s+TABLE\s+(\S+)\s*;?\s*$`)
	reCreate    = regexp.MustCompile(`(?is)^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\S+)\s*\((.*)\)\s*;?\s*$`)
	reGrants    = regexp.MustCompile(`(?is)^\s*SHOW\s+GRANTS\s+ON\s+(TABLE|SCHEMA)\s+(\S+)\s*;?\s*$`)
	reSelect    = regexp.MustCompile(`(?is)^\s*SELECT\s+(.+?)\s*;?\s*$`)
	reRoleInSes = regexp.MustCompile(`(?i)^IS_ROLE_IN_SESSION\(\s*'([^']*)'\s*\)$`)
)

// objectName resolves a (possibly quoted) dotted name: unquoted parts
// uppercased, quoted ones as written.
func objectName(q string) string {
	parts := strings.Split(q, ".")
	for i, p := range parts {
		if strings.HasPrefix(p, `"`) {
			parts[i] = strings.ReplaceAll(strings.Trim(p, `"`), `""`, `"`)
		} else {
			parts[i] = strings.ToUpper(p)
		}
	}
	return strings.Join(parts, ".")
}

// query is POST /queries/v1/query-request: one statement of the few the
// fake knows, run in the session's role.
func (s *Server) query(r *http.Request, body []byte) (any, *apiErr) {
	ss, bad := s.sessionOf(r)
	if bad != nil {
		return bad, nil
	}
	var req struct {
		SQLText    string `json:"sqlText"`
		AsyncExec  bool   `json:"asyncExec"`
		SequenceID uint64 `json:"sequenceId"`
	}
	if err := json.Unmarshal(body, &req); err != nil || strings.TrimSpace(req.SQLText) == "" {
		return refuse("001003", "42000", "SQL compilation error: empty or undecodable request"), nil
	}
	if req.SequenceID <= ss.seq {
		return refuse("000605", "", "sequenceId %d does not follow %d", req.SequenceID, ss.seq), nil
	}
	ss.seq = req.SequenceID
	s.statements = append(s.statements, req.SQLText)
	sqlText := req.SQLText
	notFound := func(n string) map[string]any {
		return refuse("002003", "42S02", "SQL compilation error:\nTable '%s' does not exist or not authorized.", n)
	}
	if m := reDescribe.FindStringSubmatch(sqlText); m != nil {
		n := objectName(m[1])
		t := s.tables[strings.ToUpper(n)]
		if t == nil || !s.holds(ss, "TABLE", n) {
			return notFound(n), nil
		}
		var cols []rcol
		for _, c := range []string{"name", "type", "kind", "null?", "default", "primary key", "unique key", "check", "expression", "comment", "policy name", "privacy domain"} {
			cols = append(cols, textCol(c))
		}
		var rows [][]*string
		for _, c := range t.cols {
			null := "Y"
			if c.NotNull {
				null = "N"
			}
			var def *string
			if c.Default != "" {
				def = str(c.Default)
			}
			rows = append(rows, []*string{str(c.Name), str(c.Type), str("COLUMN"), str(null), def, str("N"), str("N"), nil, nil, nil, nil, nil})
		}
		return s.result(ss, typeSCL, cols, rows), nil
	}
	if m := reGrants.FindStringSubmatch(sqlText); m != nil {
		typ, n := strings.ToUpper(m[1]), objectName(m[2])
		exists := s.tables[strings.ToUpper(n)] != nil
		if typ == "SCHEMA" {
			for k := range s.tables {
				exists = exists || strings.HasPrefix(k, strings.ToUpper(n)+".")
			}
			for _, g := range s.grants {
				exists = exists || (g.objType == "SCHEMA" && g.object == n)
			}
		}
		if !exists || !s.holds(ss, typ, n) {
			return refuse("002003", "42S02", "SQL compilation error:\n%s '%s' does not exist or not authorized.", strings.ToUpper(typ[:1])+strings.ToLower(typ[1:]), n), nil
		}
		var cols []rcol
		for _, c := range []string{"created_on", "privilege", "granted_on", "name", "granted_to", "grantee_name", "grant_option", "granted_by"} {
			cols = append(cols, textCol(c))
		}
		var rows [][]*string
		for _, g := range s.grants {
			if g.objType == typ && g.object == n {
				rows = append(rows, []*string{str("2026-01-01 00:00:00.000 +0000"), str(g.privilege), str(typ), str(n), str("ROLE"), str(g.role), str("false"), str("SYSADMIN")})
			}
		}
		sort.SliceStable(rows, func(i, j int) bool { return *rows[i][1] < *rows[j][1] })
		return s.result(ss, typeSCL, cols, rows), nil
	}
	if m := reCreate.FindStringSubmatch(sqlText); m != nil {
		n := objectName(m[1])
		parts := strings.Split(n, ".")
		if len(parts) != 3 {
			return refuse("090105", "22000", "Cannot perform CREATE TABLE. This session does not have a current database. Call 'USE DATABASE', or use a qualified name."), nil
		}
		if !s.holds(ss, "SCHEMA", parts[0]+"."+parts[1], "CREATE TABLE", "OWNERSHIP") {
			return refuse("003001", "42501", "SQL access control error:\nInsufficient privileges to operate on schema '%s'", parts[1]), nil
		}
		status := fmt.Sprintf("%s already exists, statement succeeded.", parts[2])
		if s.tables[strings.ToUpper(n)] == nil {
			var cols []Column
			for _, def := range splitDefs(m[2]) {
				cn, typ, _ := strings.Cut(strings.TrimSpace(def), " ")
				if cn == "" || strings.TrimSpace(typ) == "" {
					return refuse("001003", "42000", "SQL compilation error:\nsyntax error line 1 at position 0 unexpected '%s'.", def), nil
				}
				cols = append(cols, Column{Name: objectName(cn), Type: strings.TrimSpace(typ)})
			}
			s.createTable(parts[0], parts[1], parts[2], cols)
			s.grants = append(s.grants, grant{"OWNERSHIP", "TABLE", n, ss.role})
			status = fmt.Sprintf("Table %s successfully created.", parts[2])
		}
		return s.result(ss, typeDDL, []rcol{textCol("status")}, [][]*string{{str(status)}}), nil
	}
	if m := reSelect.FindStringSubmatch(sqlText); m != nil {
		var cols []rcol
		var row []*string
		for _, e := range splitDefs(m[1]) {
			e = strings.TrimSpace(e)
			switch u := strings.ToUpper(e); {
			case u == "CURRENT_ROLE()":
				cols, row = append(cols, textCol(u)), append(row, str(ss.role))
			case u == "CURRENT_WAREHOUSE()":
				cols, row = append(cols, textCol(u)), append(row, nullableStr(ss.warehouse))
			case u == "CURRENT_DATABASE()":
				cols, row = append(cols, textCol(u)), append(row, nullableStr(ss.db))
			case u == "CURRENT_SCHEMA()":
				cols, row = append(cols, textCol(u)), append(row, nullableStr(ss.schema))
			case reRoleInSes.MatchString(e):
				role := reRoleInSes.FindStringSubmatch(e)[1]
				v := "false"
				if s.roles(ss)[strings.ToUpper(role)] {
					v = "true"
				}
				cols, row = append(cols, rcol{Name: u, Type: "boolean", Nullable: true}), append(row, str(v))
			default:
				return refuse("002140", "42601", "SQL compilation error:\nUnknown function or expression %s (the fake knows CURRENT_ROLE(), CURRENT_WAREHOUSE(), CURRENT_DATABASE(), CURRENT_SCHEMA() and IS_ROLE_IN_SESSION('r')).", e), nil
			}
		}
		return s.result(ss, typeSelect, cols, [][]*string{row}), nil
	}
	return refuse("001003", "42000", "SQL compilation error:\nsyntax error line 1 at position 0 (the fake runs DESCRIBE TABLE, SHOW GRANTS ON TABLE|SCHEMA, CREATE TABLE IF NOT EXISTS and SELECT of session functions only)."), nil
}

func nullableStr(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}
