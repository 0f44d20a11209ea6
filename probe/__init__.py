"""The failover drill's probe: observes which region serves clients of a region, where health checks act.

Run by the drill's state machine as its own small Lambda function (entry point ``probe.app.handler``):
DNS answers from the hosted zone's authoritative name servers, asked with an EDNS Client Subnet of the
drilled region (``probe.authoritative``), and an HTTPS request to the address they give, whose
``X-Served-Region`` header names the region that served it (``probe.served``). With ``authReplica``,
also the identity check (``probe.identity``): sign-in and token refresh at the replica's Cognito endpoint.
"""
