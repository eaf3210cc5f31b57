package memstore

import (
	"maps"
	"sync"
)

// Msg is one stored message: what JetStream would hold for it.
type Msg struct {
	Seq     uint64
	Subject string
	Header  map[string]string
	Data    []byte
}

// Get returns a header value ("" when absent), like nats.Header.Get.
func (m Msg) Get(name string) string { return m.Header[name] }

// Stream is the in-memory stand-in for the JetStream stream: one global
// sequence over every subject, the last sequence of each subject for the
// expectations, and the message ids seen, for deduplication. Several Stores
// may share one Stream, as several processes share the real stream.
type Stream struct {
	mu   sync.Mutex
	msgs []Msg
	last map[string]uint64
	ids  map[string]uint64
}

// NewStream returns an empty stream.
func NewStream() *Stream {
	return &Stream{last: map[string]uint64{}, ids: map[string]uint64{}}
}

// Publish stores a message as it is, with no expectation and no
// deduplication, and returns its sequence. Tests use it to forge messages,
// as someone with raw write access to the stream could.
func (st *Stream) Publish(subject string, header map[string]string, data []byte) uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.store(subject, header, data)
}

// store appends one message; st.mu is held.
func (st *Stream) store(subject string, header map[string]string, data []byte) uint64 {
	seq := uint64(len(st.msgs)) + 1
	st.msgs = append(st.msgs, Msg{Seq: seq, Subject: subject, Header: maps.Clone(header), Data: append([]byte(nil), data...)})
	st.last[subject] = seq
	if id := header[msgIDHeader]; id != "" {
		if _, seen := st.ids[id]; !seen {
			st.ids[id] = seq
		}
	}
	return seq
}

// LastSeq is the sequence of the last message, 0 when empty.
func (st *Stream) LastSeq() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return uint64(len(st.msgs))
}

// Messages returns every message on subject in stream order, regardless of
// back-pointers: what a consumer filtered on the subject would see.
func (st *Stream) Messages(subject string) []Msg {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []Msg
	for _, m := range st.msgs {
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// lastMsg returns the last message on subject; st.mu is held.
func (st *Stream) lastMsg(subject string) (Msg, bool) {
	seq := st.last[subject]
	if seq == 0 {
		return Msg{}, false
	}
	return st.msgs[seq-1], true
}

// get returns the message at seq; st.mu is held.
func (st *Stream) get(seq uint64) (Msg, bool) {
	if seq == 0 || seq > uint64(len(st.msgs)) {
		return Msg{}, false
	}
	return st.msgs[seq-1], true
}
