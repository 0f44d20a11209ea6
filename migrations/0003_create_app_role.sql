-- The role the Lambda functions connect as: never admin. Each region's function role is mapped to it
-- by the deployment (AWS IAM GRANT users_api TO '<role ARN>'), which needs the role to exist first.
-- It may read and change users and nothing else: no DDL, no tracking table, no other table.
CREATE ROLE users_api WITH LOGIN;

GRANT SELECT, INSERT, UPDATE, DELETE ON users TO users_api;
