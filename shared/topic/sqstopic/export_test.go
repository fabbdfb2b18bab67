package sqstopic

// Test helpers shared with the external test package.
var (
	TestAuth         = testAuth
	NewTestTransport = newTestTransport
	ReceiveAll       = receiveAll
)
