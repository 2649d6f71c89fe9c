-- The evidence store's schema version 2 as cxprobe wrote it on SQLite before Alembic
-- (cxprobe/store/schema.py at 3a6708d), dumped from sqlite_master. Frozen.
CREATE TABLE schema_version (
	version INTEGER NOT NULL,
	applied_at DATETIME NOT NULL,
	CONSTRAINT pk_schema_version PRIMARY KEY (version)
);
CREATE TABLE runs (
	run_id VARCHAR(36) NOT NULL,
	check_id VARCHAR(200) NOT NULL,
	target VARCHAR(200) NOT NULL,
	channel VARCHAR(200) NOT NULL,
	scenario VARCHAR(200) NOT NULL,
	location VARCHAR(200) NOT NULL,
	slot_at DATETIME NOT NULL,
	token VARCHAR(200) NOT NULL,
	status VARCHAR(10) NOT NULL,
	period VARCHAR(200) NOT NULL,
	thresholds TEXT NOT NULL,
	expected_queue VARCHAR(200),
	sent_at DATETIME,
	sent_external_id TEXT,
	resume_state TEXT,
	first_response_seconds FLOAT,
	first_response_responder VARCHAR(200),
	first_human_seconds FLOAT,
	routed_queue VARCHAR(200),
	routing VARCHAR(200) NOT NULL,
	outcome VARCHAR(200),
	reason TEXT NOT NULL,
	created_at DATETIME NOT NULL,
	finished_at DATETIME,
	CONSTRAINT pk_runs PRIMARY KEY (run_id),
	CONSTRAINT ck_runs_status CHECK (status IN ('open', 'closed')),
	CONSTRAINT uq_runs_token UNIQUE (token)
);
CREATE INDEX ix_runs_sent_external_id ON runs (sent_external_id);
CREATE INDEX ix_runs_check_id_slot_at ON runs (check_id, slot_at);
CREATE INDEX ix_runs_status ON runs (status);
CREATE INDEX ix_runs_target_channel_sent_at ON runs (target, channel, sent_at);
CREATE INDEX ix_runs_slot_at ON runs (slot_at);
CREATE TABLE channel_state (
	channel VARCHAR(200) NOT NULL,
	"key" VARCHAR(200) NOT NULL,
	value TEXT NOT NULL,
	updated_at DATETIME NOT NULL,
	CONSTRAINT pk_channel_state PRIMARY KEY (channel, "key")
);
CREATE TABLE chain (
	seq BIGINT NOT NULL,
	kind VARCHAR(200) NOT NULL,
	run_id VARCHAR(36),
	check_id VARCHAR(200),
	target VARCHAR(200),
	channel VARCHAR(200),
	location VARCHAR(200),
	slot_at DATETIME,
	record_hash VARCHAR(64) NOT NULL,
	prev_hash VARCHAR(64) NOT NULL,
	entry_hash VARCHAR(64) NOT NULL,
	created_at DATETIME NOT NULL,
	note TEXT NOT NULL,
	detail TEXT,
	CONSTRAINT pk_chain PRIMARY KEY (seq),
	CONSTRAINT ck_chain_kind CHECK (kind IN ('run', 'amendment', 'purge')),
	CONSTRAINT uq_chain_prev_hash UNIQUE (prev_hash),
	CONSTRAINT uq_chain_entry_hash UNIQUE (entry_hash)
);
CREATE INDEX ix_chain_run_id_seq ON chain (run_id, seq);
CREATE INDEX ix_chain_slot_at ON chain (slot_at);
CREATE INDEX ix_chain_kind ON chain (kind);
CREATE TABLE chain_head (
	id INTEGER NOT NULL,
	seq BIGINT NOT NULL,
	entry_hash VARCHAR(64) NOT NULL,
	updated_at DATETIME NOT NULL,
	CONSTRAINT pk_chain_head PRIMARY KEY (id),
	CONSTRAINT ck_chain_head_single_row CHECK (id = 1)
);
CREATE TABLE exports (
	id INTEGER NOT NULL,
	exported_at DATETIME NOT NULL,
	filters TEXT NOT NULL,
	format VARCHAR(200) NOT NULL,
	manifest_sha256 VARCHAR(64) NOT NULL,
	chain_seq BIGINT NOT NULL,
	chain_hash VARCHAR(64) NOT NULL,
	runs INTEGER NOT NULL,
	CONSTRAINT pk_exports PRIMARY KEY (id)
);
CREATE TABLE slots (
	check_id VARCHAR(200) NOT NULL,
	location VARCHAR(200) NOT NULL,
	slot_at DATETIME NOT NULL,
	claimed_at DATETIME NOT NULL,
	run_id VARCHAR(36),
	CONSTRAINT pk_slots PRIMARY KEY (check_id, location, slot_at),
	CONSTRAINT uq_slots_run_id UNIQUE (run_id),
	CONSTRAINT fk_slots_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (run_id) ON DELETE SET NULL
);
CREATE TABLE messages (
	id INTEGER NOT NULL,
	run_id VARCHAR(36) NOT NULL,
	direction VARCHAR(3) NOT NULL,
	external_id TEXT NOT NULL,
	observed_at DATETIME NOT NULL,
	arrived_at DATETIME NOT NULL,
	timing_method VARCHAR(200) NOT NULL,
	seconds FLOAT,
	sender TEXT NOT NULL,
	responder VARCHAR(200),
	channel_responder VARCHAR(200),
	subject TEXT NOT NULL,
	text TEXT NOT NULL,
	headers TEXT NOT NULL,
	late BOOLEAN,
	qualifies BOOLEAN,
	queue VARCHAR(200),
	CONSTRAINT pk_messages PRIMARY KEY (id),
	CONSTRAINT ck_messages_direction CHECK (direction IN ('out', 'in')),
	CONSTRAINT uq_messages_run_id_direction_external_id UNIQUE (run_id, direction, external_id),
	CONSTRAINT fk_messages_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (run_id) ON DELETE CASCADE
);
CREATE INDEX ix_messages_run_id_arrived_at ON messages (run_id, arrived_at);
CREATE TABLE exported_runs (
	export_id INTEGER NOT NULL,
	run_id VARCHAR(36) NOT NULL,
	record_hash VARCHAR(64) NOT NULL,
	CONSTRAINT pk_exported_runs PRIMARY KEY (export_id, run_id),
	CONSTRAINT fk_exported_runs_export_id_exports FOREIGN KEY(export_id) REFERENCES exports (id) ON DELETE CASCADE
);
CREATE INDEX ix_exported_runs_run_id ON exported_runs (run_id);
CREATE TABLE artifacts (
	id INTEGER NOT NULL,
	run_id VARCHAR(36) NOT NULL,
	message_id INTEGER,
	kind VARCHAR(200) NOT NULL,
	media_type VARCHAR(200) NOT NULL,
	sha256 VARCHAR(64) NOT NULL,
	size BIGINT NOT NULL,
	content BLOB NOT NULL,
	created_at DATETIME NOT NULL,
	CONSTRAINT pk_artifacts PRIMARY KEY (id),
	CONSTRAINT fk_artifacts_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (run_id) ON DELETE CASCADE,
	CONSTRAINT fk_artifacts_message_id_messages FOREIGN KEY(message_id) REFERENCES messages (id) ON DELETE CASCADE
);
CREATE INDEX ix_artifacts_run_id ON artifacts (run_id);
CREATE INDEX ix_artifacts_message_id ON artifacts (message_id);
