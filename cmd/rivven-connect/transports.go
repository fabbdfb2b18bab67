package main

// The CLI links every topic transport a broker block can name; the SQS
// one comes with the sqs connectors (connectors/all).
import (
	_ "github.com/rivven/rivven-connect/shared/topic/kafkatopic"
	_ "github.com/rivven/rivven-connect/shared/topic/pubsubtopic"
)
