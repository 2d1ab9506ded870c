//! DNS over TCP through hickory-server: it frames messages (RFC 7766: two-octet length, several
//! queries per connection, an idle timeout); Meridian's responder answers them.

use std::iter;
use std::sync::Arc;

use hickory_proto::op::{Header, MessageType, Metadata, OpCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::respond::prepare;
use super::server::Shared;

/// Adapter from hickory-server's request handling to Meridian's responder.
#[derive(Debug, Clone)]
pub(crate) struct TcpHandler {
    pub(crate) shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let catalog = self.shared.catalog.load();
        // The same parse and answer as UDP, from the raw bytes: hickory's decoder accepts ECS
        // options that RFC 7871 says to refuse, so Meridian checks them itself.
        let Some(p) = prepare(&catalog, request.as_slice(), request.src().ip(), u16::MAX) else {
            let md = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
            return ResponseInfo::from(Header {
                metadata: md,
                counts: Default::default(),
            });
        };
        catalog.count(&p.answered());
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(e) = &p.edns {
            builder.edns(e);
        }
        let response = builder.build(
            p.metadata,
            p.reply.answers.iter(),
            p.reply.authority.iter(),
            iter::empty(),
            p.reply.additional.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "failed to send a TCP reply");
                ResponseInfo::from(Header {
                    metadata: p.metadata,
                    counts: Default::default(),
                })
            }
        }
    }
}
