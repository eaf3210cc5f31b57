package natsjs_test

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeLoadFixture()
	os.Exit(code)
}
