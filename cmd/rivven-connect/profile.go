package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// profileFlags are --cpuprofile and --memprofile of the commands that run
// a pipeline (local, run), so that a slow or growing run can be looked at
// with `go tool pprof` without rebuilding anything.
type profileFlags struct {
	cpu, mem *string
}

func addProfileFlags(fs *flag.FlagSet) profileFlags {
	return profileFlags{
		cpu: fs.String("cpuprofile", "", "write a CPU profile of the run to FILE (go tool pprof reads it)"),
		mem: fs.String("memprofile", "", "write a heap profile to FILE when the run ends (go tool pprof reads it)"),
	}
}

// start begins the CPU profile; the returned stop ends it and writes the
// heap profile. Both files are opened before the pipeline starts, so that
// a path that cannot be written is a usage error, not a lost profile.
func (pf profileFlags) start() (stop func() error, err error) {
	var cpu, mem *os.File
	closeAll := func() {
		for _, f := range []*os.File{cpu, mem} {
			if f != nil {
				f.Close()
			}
		}
	}
	if *pf.mem != "" {
		if mem, err = os.Create(*pf.mem); err != nil {
			return nil, exitWith(exitUsage, fmt.Errorf("--memprofile: %w", err))
		}
	}
	if *pf.cpu != "" {
		if cpu, err = os.Create(*pf.cpu); err != nil {
			closeAll()
			return nil, exitWith(exitUsage, fmt.Errorf("--cpuprofile: %w", err))
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			closeAll()
			return nil, exitWith(exitUsage, fmt.Errorf("--cpuprofile: %w", err))
		}
	}
	return func() error {
		var errs []error
		if cpu != nil {
			pprof.StopCPUProfile()
			errs = append(errs, cpu.Close())
		}
		if mem != nil {
			// The heap profile is of live objects as of the last GC;
			// run one so that it shows what the run still holds.
			runtime.GC()
			if err := pprof.Lookup("allocs").WriteTo(mem, 0); err != nil {
				errs = append(errs, fmt.Errorf("--memprofile: %w", err))
			}
			errs = append(errs, mem.Close())
		}
		return errors.Join(errs...)
	}, nil
}
