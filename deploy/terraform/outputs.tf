output "edge_role_arn" {
  description = "Annotate the edge's ServiceAccount with it (eks.amazonaws.com/role-arn)."
  value       = aws_iam_role.edge_writer.arn
}

output "reader_role_arn" {
  description = "The role analysts and the reports job assume."
  value       = aws_iam_role.reader.arn
}

output "workflow_role_arn" {
  description = "Annotate the workflow's ServiceAccount with it (alerts delivery, registry watch)."
  value       = aws_iam_role.workflow.arn
}

output "maintenance_role_arn" {
  description = "The role retention and off-boarding assume."
  value       = aws_iam_role.maintenance.arn
}

output "s3_vpc_endpoint_dns" {
  description = "MLMON_S3_ENDPOINT for the cloud overlay: https://bucket.<this name>."
  value       = trimprefix(aws_vpc_endpoint.s3.dns_entry[0].dns_name, "*.")
}

output "lake_uri" {
  description = "MLMON_LAKE."
  value       = "s3://${aws_s3_bucket.lake.bucket}/${var.prefix}"
}
