package snowflake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rivven/rivven-connect/connectors/warehouse/snowflake/snowflakefake"
	"github.com/rivven/rivven-connect/shared/resilience"
)

// The SQL side (check, DESCRIBE TABLE, CREATE TABLE) goes through the
// gosnowflake driver against the fake's driver protocol: login with the
// SNOWFLAKE_JWT authenticator, statements on /queries/v1/query-request,
// logout on close.

func TestCheckRunsItsSQLThroughTheDriver(t *testing.T) {
	f := newFake(t)
	s := newSink(t, sinkYAML(f, ""))
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()",
		"DESCRIBE TABLE ANALYTICS.CDC.ORDERS",
		"SHOW GRANTS ON TABLE ANALYTICS.CDC.ORDERS",
		"SELECT IS_ROLE_IN_SESSION('RIVVEN_ROLE')",
	}
	if got := f.Statements(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statements\n%q\nwant\n%q", got, want)
	}
	var logins []string
	for _, r := range f.Requests() {
		if r.Path == "/session/v1/login-request" {
			logins = append(logins, fmt.Sprintf("%d db=%s schema=%s wh=%s role=%s", r.Status,
				r.Query.Get("databaseName"), r.Query.Get("schemaName"), r.Query.Get("warehouse"), r.Query.Get("roleName")))
		}
	}
	if want := "[200 db=ANALYTICS schema=CDC wh=COMPUTE_WH role=RIVVEN_ROLE]"; fmt.Sprint(logins) != want {
		t.Errorf("logins %v, want %s", logins, want)
	}
	if f.Sessions() != 1 {
		t.Errorf("%d open sessions after check, want 1", f.Sessions())
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.Sessions() != 0 {
		t.Errorf("%d sessions left after Close: the driver did not log out", f.Sessions())
	}
}

func TestCheckRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("INSERT through a granted role", func(t *testing.T) {
		f := newFake(t)
		f.Grant("INSERT", "TABLE", db+"."+sch+"."+tbl, "LOADER") // beside RIVVEN_ROLE's
		f.RoleGrants = map[string][]string{"RIVVEN_ROLE": {"LOADER"}}
		if err := newSink(t, sinkYAML(f, "")).Check(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("only an inherited INSERT", func(t *testing.T) {
		f := snowflakefake.New("MYORG-ACCOUNT1", "RIVVEN_USER", &testKey(t).PublicKey)
		t.Cleanup(f.Close)
		f.Roles, f.Warehouses = []string{"RIVVEN_ROLE"}, []string{"COMPUTE_WH"}
		f.CreateTable(db, sch, tbl, orderCols...)
		f.Grant("SELECT", "TABLE", db+"."+sch+"."+tbl, "RIVVEN_ROLE")
		f.Grant("INSERT", "TABLE", db+"."+sch+"."+tbl, "OTHER_ROLE")
		err := newSink(t, sinkYAML(f, "")).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "holds neither INSERT nor OWNERSHIP on table") || resilience.ClassOf(err) != resilience.Auth {
			t.Fatalf("Check without INSERT: %v", err)
		}
		// OTHER_ROLE is not in the session: it was asked about and refused.
		if st := f.Statements(); st[len(st)-1] != "SELECT IS_ROLE_IN_SESSION('OTHER_ROLE')" {
			t.Errorf("last statement %q", st[len(st)-1])
		}
		f.RoleGrants = map[string][]string{"RIVVEN_ROLE": {"OTHER_ROLE"}}
		if err := newSink(t, sinkYAML(f, "")).Check(ctx); err != nil {
			t.Fatalf("Check with INSERT through OTHER_ROLE: %v", err)
		}
	})
	t.Run("no privilege on the table", func(t *testing.T) {
		f := snowflakefake.New("MYORG-ACCOUNT1", "RIVVEN_USER", &testKey(t).PublicKey)
		t.Cleanup(f.Close)
		f.Roles, f.Warehouses = []string{"RIVVEN_ROLE"}, []string{"COMPUTE_WH"}
		f.CreateTable(db, sch, tbl, orderCols...)
		err := newSink(t, sinkYAML(f, "")).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "does not exist or not authorized") {
			t.Fatalf("Check on a table the role cannot see: %v", err)
		}
	})
	t.Run("warehouse missing", func(t *testing.T) {
		f := newFake(t)
		f.Warehouses = nil
		err := newSink(t, sinkYAML(f, "")).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "warehouse COMPUTE_WH does not exist or role RIVVEN_ROLE may not use it") {
			t.Fatalf("Check without the warehouse: %v", err)
		}
	})
	t.Run("create_table without the table", func(t *testing.T) {
		f := snowflakefake.New("MYORG-ACCOUNT1", "RIVVEN_USER", &testKey(t).PublicKey)
		t.Cleanup(f.Close)
		f.Roles, f.Warehouses = []string{"RIVVEN_ROLE"}, []string{"COMPUTE_WH"}
		f.Grant("USAGE", "SCHEMA", db+"."+sch, "RIVVEN_ROLE")
		// The default pipe of a missing table cannot answer: check only
		// the SQL side here.
		s := newSink(t, sinkYAML(f, "create_table: true\n"))
		err := checkSQL(ctx, s)
		if err == nil || !strings.Contains(err.Error(), "holds neither CREATE TABLE nor OWNERSHIP on schema ANALYTICS.CDC") {
			t.Fatalf("Check without CREATE TABLE: %v", err)
		}
		f.Grant("CREATE TABLE", "SCHEMA", db+"."+sch, "RIVVEN_ROLE")
		if err := checkSQL(ctx, s); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the driver's JWT is verified", func(t *testing.T) {
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		f := newFake(t)
		f.PublicKey = &other.PublicKey
		_, err = newSink(t, sinkYAML(f, "")).sql.checkSession(ctx, &Config{})
		if err == nil || !strings.Contains(err.Error(), "390144") || !strings.Contains(err.Error(), "signature does not verify") || resilience.ClassOf(err) != resilience.Auth {
			t.Fatalf("driver login with a key the user does not have: %v", err)
		}
	})
	t.Run("the driver's JWT expired", func(t *testing.T) {
		f := newFake(t)
		f.SetNow(func() time.Time { return time.Now().Add(2 * time.Hour) })
		_, err := newSink(t, sinkYAML(f, "")).sql.checkSession(ctx, &Config{})
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("driver login with an expired JWT: %v", err)
		}
	})
	t.Run("role not granted to the driver's session", func(t *testing.T) {
		f := newFake(t)
		f.Roles = nil
		_, err := newSink(t, sinkYAML(f, "")).sql.checkSession(ctx, &Config{})
		if err == nil || !strings.Contains(err.Error(), "390189") || resilience.ClassOf(err) != resilience.Auth {
			t.Fatalf("driver login in a role not granted: %v", err)
		}
	})
}

// checkSQL is Check without the streaming half.
func checkSQL(ctx context.Context, s *Sink) error {
	if _, err := s.sql.checkSession(ctx, &s.cfg); err != nil {
		return err
	}
	objType, object, want := "TABLE", s.qualified(), []string{"INSERT", "OWNERSHIP"}
	if _, err := s.loadTable(ctx); err != nil {
		objType, object, want = "SCHEMA", db+"."+sch, []string{"CREATE TABLE", "OWNERSHIP"}
	}
	ok, err := s.sql.holds(ctx, objType, object, want...)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("holds neither %s on %s %s", strings.Join(want, " nor "), strings.ToLower(objType), object)
	}
	return nil
}

// TestFakeDriverProtocolRefuses: the fake's login and query endpoints
// refuse what the service refuses, to requests this test makes itself.
func TestFakeDriverProtocolRefuses(t *testing.T) {
	f := newFake(t)
	post := func(path, auth string, body any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, f.URL()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return out
	}
	jwtFor := func(k *rsa.PrivateKey, iss string) string {
		now := time.Now()
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": iss, "sub": "MYORG-ACCOUNT1.RIVVEN_USER",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}).SignedString(k)
		return tok
	}
	fp, err := Fingerprint(&testKey(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	good := jwtFor(testKey(t), "MYORG-ACCOUNT1.RIVVEN_USER."+fp)
	login := func(token, authn string) map[string]any {
		return post("/session/v1/login-request?roleName=RIVVEN_ROLE", "", map[string]any{"data": map[string]any{
			"ACCOUNT_NAME": "MYORG-ACCOUNT1", "LOGIN_NAME": "RIVVEN_USER", "AUTHENTICATOR": authn, "TOKEN": token}})
	}
	for name, c := range map[string]struct {
		out  map[string]any
		code string
	}{
		"wrong fingerprint": {login(jwtFor(testKey(t), "MYORG-ACCOUNT1.RIVVEN_USER.SHA256:AAAA"), "SNOWFLAKE_JWT"), "390144"},
		"password login":    {login(good, "SNOWFLAKE"), "390100"},
		"no session token":  {post("/queries/v1/query-request", "", map[string]any{"sqlText": "SELECT CURRENT_ROLE()", "sequenceId": 1}), "390101"},
		"unknown session":   {post("/queries/v1/query-request", `Snowflake Token="nope"`, map[string]any{"sqlText": "SELECT CURRENT_ROLE()", "sequenceId": 1}), "390104"},
	} {
		if c.out["success"] != false || c.out["code"] != c.code {
			t.Errorf("%s: %v, want success false and code %s", name, c.out, c.code)
		}
	}
	ok := login(good, "SNOWFLAKE_JWT")
	if ok["success"] != true {
		t.Fatalf("login: %v", ok)
	}
	auth := `Snowflake Token="` + ok["data"].(map[string]any)["token"].(string) + `"`
	q := func(seq int, sqlText string) map[string]any {
		return post("/queries/v1/query-request", auth, map[string]any{"sqlText": sqlText, "sequenceId": seq})
	}
	if r := q(1, "INSERT INTO ORDERS VALUES (1)"); r["success"] != false || r["code"] != "001003" {
		t.Errorf("unknown statement: %v", r)
	}
	if r := q(1, "SELECT CURRENT_ROLE()"); r["success"] != false {
		t.Errorf("a repeated sequenceId was accepted: %v", r)
	}
	r := q(2, "SHOW GRANTS ON TABLE analytics.cdc.orders")
	d, _ := r["data"].(map[string]any)
	if r["success"] != true || d["queryResultFormat"] != "json" || fmt.Sprint(d["rowset"]) != "[[2026-01-01 00:00:00.000 +0000 INSERT TABLE ANALYTICS.CDC.ORDERS ROLE RIVVEN_ROLE false SYSADMIN]]" {
		t.Errorf("SHOW GRANTS: %v", r)
	}
	if r := post("/session?delete=true", auth, nil); r["success"] != true || f.Sessions() != 0 {
		t.Errorf("logout: %v, %d sessions", r, f.Sessions())
	}
}
