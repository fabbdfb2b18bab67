package functions_test

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkCloudRunColdStart measures a Cloud Run cold start of the stdout
// function, from exec to its port accepting connections, for a pipeline
// without secret references (one process) and one with a reference (the
// function runs as a supervised child of itself, shared/secrets/supervise):
//
//	go test ./functions -run '^$' -bench CloudRunColdStart -benchtime 20x
func BenchmarkCloudRunColdStart(b *testing.B) {
	needBinary(b)
	const withRef = `
secrets:
  provider: env
sinks:
  console:
    connector: stdout
    topics: [orders]
    config: {format: jsonl, cloudevents: {type_prefix: "vault:secret/coldstart#prefix"}}
`
	for _, c := range []struct{ name, pipeline string }{{"no-references", pipelineYAML}, {"vault-reference", withRef}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				port := freePort(b)
				cmd := exec.Command(stdoutBin)
				cmd.Env = append(os.Environ(), "PORT="+port, "RIVVEN_PIPELINE="+c.pipeline, "SECRET_COLDSTART_PREFIX=io.example")
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- cmd.Wait() }()
				for {
					if conn, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
						conn.Close()
						break
					}
					select {
					case err := <-exited:
						b.Fatalf("the function ended before serving: %v", err)
					case <-time.After(time.Millisecond):
					}
				}
				b.StopTimer()
				_ = cmd.Process.Kill()
				<-exited
				b.StartTimer()
			}
		})
	}
}
