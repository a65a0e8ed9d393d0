-- Workload identities the service trusts (JSON array; see domain::WorkloadIdentities).
ALTER TABLE services ADD COLUMN identities TEXT NOT NULL DEFAULT '[]';
