# mlmon on AWS, example: the least-privilege roles (edge writer, reader, workflow, maintenance) with the policy documents of deploy/iam/
# (the very files the test suite loads into the moto IAM server), the lake bucket with SSE-KMS and
# lifecycle expiry, and the S3/STS interface endpoints the edge reaches without internet access.
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
  }
}

provider "aws" {
  region = var.region
}

locals {
  # the placeholders of deploy/iam/*.json, and nothing else
  policy_vars = {
    bucket      = var.bucket
    prefix      = var.prefix
    kms_key_arn = var.kms_key_arn
  }
  iam_dir = "${path.module}/../iam"
  # What the bucket may expire by object age: each metric table, its rollups and its compactions
  # (`mlmon retention lifecycle`'s prefixes, checked by tests/deploy/test_terraform.py). Not
  # v1/references/ (kept while windows name it) nor audit/ (retired behind a signed checkpoint):
  # `mlmon retention apply` retires those (docs/security.md section 6a).
  expiring_prefixes = [
    "v1/alerts/",
    "v1/rollups/alerts/",
    "v1/compacted/alerts/",
    "v1/drift/",
    "v1/rollups/drift/",
    "v1/compacted/drift/",
    "v1/golden/",
    "v1/rollups/golden/",
    "v1/compacted/golden/",
    "v1/label_batches/",
    "v1/rollups/label_batches/",
    "v1/compacted/label_batches/",
    "v1/latency/",
    "v1/rollups/latency/",
    "v1/compacted/latency/",
    "v1/performance/",
    "v1/rollups/performance/",
    "v1/compacted/performance/",
    "v1/profiles/",
    "v1/rollups/profiles/",
    "v1/compacted/profiles/",
    "v1/registry_events/",
    "v1/rollups/registry_events/",
    "v1/compacted/registry_events/",
    "v1/samples/",
    "v1/rollups/samples/",
    "v1/compacted/samples/",
    "v1/segment_performance/",
    "v1/rollups/segment_performance/",
    "v1/compacted/segment_performance/",
    "v1/segment_profiles/",
    "v1/rollups/segment_profiles/",
    "v1/compacted/segment_profiles/",
    "v1/version_checks/",
    "v1/rollups/version_checks/",
    "v1/compacted/version_checks/",
  ]
}

# --- policies: deploy/iam/*.json, filled in --------------------------------------------------------

resource "aws_iam_policy" "edge_writer" {
  name        = "mlmon-edge-writer"
  description = "mlmon edge: PutObject under the lake prefix, GenerateDataKey on the lake key"
  policy      = templatefile("${local.iam_dir}/edge-writer.json", local.policy_vars)
}

resource "aws_iam_policy" "reader" {
  name        = "mlmon-lake-reader"
  description = "mlmon analysts and reports: list/get the lake, put compaction objects and reports"
  policy      = templatefile("${local.iam_dir}/reader.json", local.policy_vars)
}

resource "aws_iam_policy" "workflow" {
  name        = "mlmon-workflow-writer"
  description = "mlmon alerts and registry watch: put registry_events, version_checks, alerts rows and their own audit"
  policy      = templatefile("${local.iam_dir}/workflow.json", local.policy_vars)
}

resource "aws_iam_policy" "maintenance" {
  name        = "mlmon-lake-maintenance"
  description = "mlmon retention and off-boarding: list/get/delete under the lake prefix"
  policy      = templatefile("${local.iam_dir}/maintenance.json", local.policy_vars)
}

# --- roles -------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "edge_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.edge_namespace}:${var.edge_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "reader_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.reader_principal_arns
    }
  }
  # mlmon server (IRSA): deploy/k8s/server/overlays/cloud/serviceaccount-irsa.yaml, the Helm chart's
  # values-cloud.yaml. Only the server's ServiceAccount, never the edge's.
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.edge_namespace}:${var.server_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# mlmon alerts deliver and mlmon registry watch (IRSA): deploy/k8s/workflow/serviceaccount.yaml,
# the Helm chart's workflow.serviceAccount. Only the workflow's ServiceAccount.
data "aws_iam_policy_document" "workflow_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.edge_namespace}:${var.workflow_service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "maintenance_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.maintenance_principal_arns
    }
  }
}

resource "aws_iam_role" "edge_writer" {
  name                 = "mlmon-edge-writer" # deploy/k8s/overlays/cloud/serviceaccount-irsa.yaml
  assume_role_policy   = data.aws_iam_policy_document.edge_trust.json
  max_session_duration = 3600
}

resource "aws_iam_role" "reader" {
  name               = "mlmon-lake-reader" # deploy/k8s/server/overlays/cloud/serviceaccount-irsa.yaml
  assume_role_policy = data.aws_iam_policy_document.reader_trust.json
}

resource "aws_iam_role" "workflow" {
  name               = "mlmon-workflow" # the reader's policy plus workflow.json
  assume_role_policy = data.aws_iam_policy_document.workflow_trust.json
}

resource "aws_iam_role" "maintenance" {
  name               = "mlmon-lake-maintenance"
  assume_role_policy = data.aws_iam_policy_document.maintenance_trust.json
}

resource "aws_iam_role_policy_attachment" "edge_writer" {
  role       = aws_iam_role.edge_writer.name
  policy_arn = aws_iam_policy.edge_writer.arn
}

resource "aws_iam_role_policy_attachment" "reader" {
  role       = aws_iam_role.reader.name
  policy_arn = aws_iam_policy.reader.arn
}

resource "aws_iam_role_policy_attachment" "workflow_reader" {
  role       = aws_iam_role.workflow.name
  policy_arn = aws_iam_policy.reader.arn
}

resource "aws_iam_role_policy_attachment" "workflow" {
  role       = aws_iam_role.workflow.name
  policy_arn = aws_iam_policy.workflow.arn
}

resource "aws_iam_role_policy_attachment" "maintenance" {
  role       = aws_iam_role.maintenance.name
  policy_arn = aws_iam_policy.maintenance.arn
}

# --- the lake bucket -----------------------------------------------------------------------------------

resource "aws_s3_bucket" "lake" {
  bucket = var.bucket
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket                  = aws_s3_bucket.lake.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Versioning stays off: a retention or off-boarding delete must really remove the data.
resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

# Object-age expiry (see docs/deploy.md: `mlmon retention apply` expires by the date= partition
# instead; use one or the other, or this one with a few days of slack as a backstop).
resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  dynamic "rule" {
    for_each = local.expiring_prefixes
    content {
      id     = "mlmon-${trimsuffix(replace(rule.value, "/", "-"), "-")}"
      status = "Enabled"
      filter {
        prefix = "${var.prefix}/${rule.value}"
      }
      expiration {
        days = var.metrics_retention_days
      }
    }
  }

  # No rule for audit/ or v1/references/: a bucket rule would delete audit segments without the
  # signed checkpoint `mlmon retention apply` writes first (`mlmon audit verify` would report the
  # records removed), and references that windows still name. Run `mlmon retention apply`.

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {
      prefix = "${var.prefix}/"
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "lake_tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.lake.arn,
      "${aws_s3_bucket.lake.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "lake" {
  bucket = aws_s3_bucket.lake.id
  policy = data.aws_iam_policy_document.lake_tls_only.json
}

# --- private access: S3 and STS interface endpoints ------------------------------------------------------

resource "aws_vpc_endpoint" "s3" {
  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.endpoint_subnet_ids
  security_group_ids  = var.endpoint_security_group_ids
  private_dns_enabled = false
}

resource "aws_vpc_endpoint" "sts" {
  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${var.region}.sts"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.endpoint_subnet_ids
  security_group_ids  = var.endpoint_security_group_ids
  private_dns_enabled = true # IRSA's AssumeRoleWithWebIdentity stays inside the VPC
}
